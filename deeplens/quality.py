"""Data-quality checks on embeddings: the right shape, finite, unit length, not degenerate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VectorReport:
    count: int
    wrong_dimension: int
    non_finite: int
    off_unit_norm: int
    min_norm: float
    max_norm: float
    duplicate_rows: int

    @property
    def passed(self) -> bool:
        return not (self.wrong_dimension or self.non_finite or self.off_unit_norm)

    def describe(self) -> str:
        if self.passed:
            return f"{self.count} embedding(s): unit-length, finite, right dimension"
        problems = [
            f"{n} {what}"
            for n, what in (
                (self.wrong_dimension, "of the wrong dimension"),
                (self.non_finite, "with NaN/inf"),
                (self.off_unit_norm, "not unit-length"),
            )
            if n
        ]
        return f"{self.count} embedding(s) checked; " + ", ".join(problems)


def check_vectors(rows: list[np.ndarray], dimension: int, tolerance: float = 1e-3) -> VectorReport:
    wrong = sum(1 for r in rows if r.shape != (dimension,))
    good = [r for r in rows if r.shape == (dimension,)]
    matrix = np.stack(good) if good else np.zeros((0, dimension), dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    norms = np.linalg.norm(matrix[finite], axis=1) if finite.any() else np.zeros(0)
    off = int(np.sum(np.abs(norms - 1.0) > tolerance))
    unique = np.unique(matrix[finite], axis=0).shape[0] if finite.any() else 0
    return VectorReport(
        count=len(rows),
        wrong_dimension=wrong,
        non_finite=int((~finite).sum()),
        off_unit_norm=off,
        min_norm=float(norms.min()) if norms.size else 0.0,
        max_norm=float(norms.max()) if norms.size else 0.0,
        duplicate_rows=int(finite.sum()) - unique,
    )
