"""Data-quality checks on embeddings (the right shape, finite, unit length, not degenerate) and
on a new index (near-duplicate retrieval at least as good as the serving index's)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
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


# -- retrieval: does a new index find what the serving one finds? -----------------------------


def augmented(data: bytes) -> bytes:
    """A near-duplicate of an image, as users make them: scaled to 60%, the centre 90% cropped,
    brightened by 15% and saved as a JPEG of quality 75. Deterministic."""
    from PIL import Image, ImageEnhance

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    w, h = rgb.size
    small = rgb.resize((max(8, w * 3 // 5), max(8, h * 3 // 5)), Image.Resampling.BILINEAR)
    sw, sh = small.size
    dx, dy = sw // 20, sh // 20
    cropped = small.crop((dx, dy, sw - dx, sh - dy))
    out = io.BytesIO()
    ImageEnhance.Brightness(cropped).enhance(1.15).save(out, "JPEG", quality=75)
    return out.getvalue()


def recall_at_1(expected: Sequence[uuid.UUID], found: Sequence[uuid.UUID | None]) -> float:
    """The share of queries whose first hit is the image they were made from."""
    if not expected:
        return 1.0
    return sum(1 for e, f in zip(expected, found, strict=True) if e == f) / len(expected)


@dataclass(frozen=True)
class RetrievalReport:
    """A new index against the serving one, on augmented copies of the tenant's own images."""

    sampled: int
    recall: float
    serving_recall: float | None
    tolerance: float
    floor: float
    mode: str  # "augmented" (queries embedded by each model) or "stored" (same vectors)
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.serving_recall is None:
            return self.recall >= self.floor
        return self.recall >= self.serving_recall - self.tolerance

    def describe(self) -> str:
        verdict = "passed" if self.passed else "failed"
        against = (
            f"the serving index's {self.serving_recall:.3f} (tolerance {self.tolerance})"
            if self.serving_recall is not None
            else f"the floor {self.floor}"
        )
        text = f"{verdict}: recall@1 {self.recall:.3f} on {self.sampled} {self.mode} queries"
        return f"{text} against {against}" + (f"; {self.note}" if self.note else "")

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "sampled": self.sampled,
            "recall": round(self.recall, 4),
            "servingRecall": None if self.serving_recall is None else round(self.serving_recall, 4),
            "tolerance": self.tolerance,
            "floor": self.floor,
            "mode": self.mode,
            "description": self.describe(),
        }
