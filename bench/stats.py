"""Summaries of measured samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation), or None without samples."""
    if not len(values):
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float | int | None]:
    """count, mean, min, p50, p95, p99, max of `values`."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    arr = np.asarray(values, dtype=np.float64)
    return {
        "count": len(arr),
        "mean": r(float(arr.mean())) if len(arr) else None,
        "min": r(float(arr.min())) if len(arr) else None,
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(float(arr.max())) if len(arr) else None,
    }
