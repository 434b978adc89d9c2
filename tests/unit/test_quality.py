import numpy as np

from deeplens.quality import check_vectors


def unit(rng: np.random.Generator, n: int, dim: int) -> list[np.ndarray]:
    m = rng.normal(size=(n, dim)).astype(np.float32)
    return list(m / np.linalg.norm(m, axis=1, keepdims=True))


def test_good_vectors_pass() -> None:
    report = check_vectors(unit(np.random.default_rng(0), 50, 8), 8)
    assert report.passed and report.count == 50 and report.duplicate_rows == 0
    assert abs(report.min_norm - 1) < 1e-5 and abs(report.max_norm - 1) < 1e-5


def test_each_defect_is_counted_and_fails() -> None:
    rng = np.random.default_rng(1)
    rows = unit(rng, 10, 8)
    rows[0] = rows[0] * 2  # not unit-length
    rows[1] = np.full(8, np.nan, dtype=np.float32)
    rows[2] = np.ones(4, dtype=np.float32)  # wrong dimension
    rows[3] = rows[4].copy()
    report = check_vectors(rows, 8)
    assert not report.passed
    assert (report.off_unit_norm, report.non_finite, report.wrong_dimension) == (1, 1, 1)
    assert report.duplicate_rows == 1
    assert "not unit-length" in report.describe() and "NaN" in report.describe()
