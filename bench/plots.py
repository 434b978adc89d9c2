"""PNG plots of a run: latency distributions, ingest throughput over time, freshness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Artefact = Callable[[str], Path]


def plot_all(results: dict[str, Any], artefact: Artefact) -> list[Path]:
    """Every plot the results allow; an empty list when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return []
    made = []
    for plot in (_upload_latency, _search_latency, _ingest_throughput, _freshness):
        path = plot(results, artefact)
        if path is not None:
            made.append(path)
    return made


def _marks(ax: Any, values: Sequence[float], target: float | None, unit: str) -> None:
    """p50 / p95 / p99 as thin lines, the target of docs/design.md as a thick red dashed one."""
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        v = float(np.percentile(values, q))
        ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{q} {v:.1f} {unit}")
    if target is not None:
        ax.axvline(
            target, color="red", linestyle="--", linewidth=2, label=f"target {target:g} {unit}"
        )
    ax.legend(fontsize=8)


def _hist(ax: Any, values: Sequence[float], log: bool) -> None:
    data = np.asarray(values, dtype=float)
    if log and data.min() > 0:
        bins = np.geomspace(data.min(), data.max() * 1.01, 40)
        ax.set_xscale("log")
    else:
        # A few far outliers would squash the rest into one bar: clip them, and say so.
        top = max(float(np.percentile(data, 99.5)) * 1.2, float(np.median(data)) * 3)
        outliers = int((data > top).sum())
        bins = np.linspace(data.min(), min(data.max(), top), 40)
        data = np.minimum(data, top)
        if outliers:
            ax.text(
                0.99,
                0.5,
                f"{outliers} above {top:.0f}\n(in the last bar)",
                transform=ax.transAxes,
                ha="right",
                fontsize=8,
            )
    ax.hist(data, bins=bins, color="#4C72B0", alpha=0.8)
    ax.set_ylabel("requests")


def _upload_latency(results: dict[str, Any], artefact: Artefact) -> Path | None:
    import matplotlib.pyplot as plt

    series = results.get("ingest", {}).get("series", {})
    latency = series.get("upload_latency_ms")
    if not latency:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    _hist(left, latency, log=True)
    _marks(left, latency, 50, "ms")
    left.set_xlabel("upload answer latency, ms (log scale)")
    left.set_title(f"Upload answer latency, {results['ingest']['clients']} clients")
    right.scatter(series["upload_start_offsets_s"], latency, s=4, alpha=0.5)
    right.axhline(50, color="red", linestyle="--", linewidth=2, label="target 50 ms")
    right.set_yscale("log")
    right.set_xlabel("seconds since the first upload")
    right.set_ylabel("latency, ms (log scale)")
    right.set_title("Upload latency over the ingest")
    right.legend(fontsize=8)
    return _save(fig, artefact("upload-latency.png"))


def _search_latency(results: dict[str, Any], artefact: Artefact) -> Path | None:
    import matplotlib.pyplot as plt

    search = results.get("search")
    if not search:
        return None
    model = results.get("raw", {}).get("single_image_ms", {}).get("all", {}).get("p50")
    panels = [
        ("by_image", "By query image", model + 25 if model is not None else None),
        ("by_id", "By stored image id", 15.0),
        ("cached_by_id", "Cached repeat (by id)", 3.0),
        ("cached_by_image", "Cached repeat (by image)", 3.0),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    points = results.get("scale", {}).get("collection_info", {}).get("points")
    for ax, (key, title, target) in zip(axes.flat, panels, strict=True):
        values = search.get(key, {}).get("series_ms")
        if not values:
            continue
        _hist(ax, values, log=False)
        _marks(ax, values, target, "ms")
        ax.set_xlabel("round trip, ms")
        ax.set_title(f"{title} ({len(values)} queries, {points} vectors)")
    return _save(fig, artefact("search-latency.png"))


def _ingest_throughput(results: dict[str, Any], artefact: Artefact) -> Path | None:
    import matplotlib.pyplot as plt

    ingest = results.get("ingest", {})
    series = ingest.get("series", {})
    done = series.get("completed_offsets_s")
    if not done:
        return None
    uploaded = sorted(
        s + ms / 1000
        for s, ms in zip(series["upload_start_offsets_s"], series["upload_latency_ms"], strict=True)
    )
    end = max(max(done), max(uploaded)) + 1
    seconds = np.arange(0, int(np.ceil(end)) + 1)
    per_second, _ = np.histogram(done, bins=seconds)
    fig, ax = plt.subplots(figsize=(13, 5))
    ax.bar(
        seconds[:-1],
        per_second,
        width=1.0,
        align="edge",
        color="#55A868",
        label="completed per second",
    )
    raw = results.get("raw", {}).get("images_per_second")
    if raw:
        ax.axhline(raw, color="red", linestyle="--", linewidth=2, label=f"raw limit {raw:.1f}/s")
        ax.axhline(0.8 * raw, color="red", linestyle=":", linewidth=1, label="80% of raw limit")
    ax.set_xlabel("seconds since the first upload")
    ax.set_ylabel("images completed per second")
    twin = ax.twinx()
    twin.plot(
        uploaded, np.arange(1, len(uploaded) + 1), color="#4C72B0", label="uploaded (cumulative)"
    )
    twin.plot(
        sorted(done), np.arange(1, len(done) + 1), color="black", label="completed (cumulative)"
    )
    twin.set_ylabel("images (cumulative)")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    ax.set_title(
        f"Bulk ingest of {ingest.get('images')} images: {ingest.get('images_per_second')} images/s "
        f"overall ({ingest.get('ratio_to_raw_limit')} of the raw limit)"
    )
    return _save(fig, artefact("ingest-throughput.png"))


def _freshness(results: dict[str, Any], artefact: Artefact) -> Path | None:
    import matplotlib.pyplot as plt

    fresh = results.get("freshness", {})
    series = fresh.get("series", {})
    values = series.get("upload_to_searchable_s")
    if not values:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    _hist(left, values, log=False)
    _marks(left, values, 8, "s")
    left.axvline(15, color="darkred", linestyle=":", linewidth=2, label="p99 target 15 s")
    left.legend(fontsize=8)
    left.set_xlabel("upload to searchable, s (status endpoint timestamps)")
    left.set_title(f"Freshness at {fresh.get('rate_per_second')} uploads/s")
    right.scatter(series["upload_offsets_s"], values, s=8)
    right.axhline(8, color="red", linestyle="--", linewidth=2, label="p50 target 8 s")
    right.axhline(15, color="darkred", linestyle=":", linewidth=2, label="p99 target 15 s")
    right.set_xlabel("upload time, seconds since the first")
    right.set_ylabel("upload to searchable, s")
    right.set_title("Freshness per upload over time")
    right.legend(fontsize=8)
    return _save(fig, artefact("freshness.png"))


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
