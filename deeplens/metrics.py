"""Prometheus metrics: the text a scrape of /metrics gets, and the pipeline's figures in it.

Counters and histograms of the API live in its worker processes. With several workers,
``PROMETHEUS_MULTIPROC_DIR`` (set by whatever starts them: `deeplens up`, or the deployment)
makes each worker write them to files there, and a scrape of any worker sums every worker's
(prometheus_client's multiprocess mode); without it, a scrape sees the worker that answers.

The pipeline's figures are not counted by any process: `PipelineCollector` reads them from the
catalog when scraped (`deeplens.catalog.stats`), at most once per `cache_seconds` per process,
so that they are the same whichever worker answers and whether or not run workers live.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deeplens.catalog.stats import PipelineStats

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


def exposition(*collectors: Collector) -> bytes:
    """What a scrape gets: this process's metrics (every worker's, in multiprocess mode), then
    those of `collectors`."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    extra = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        extra.register(collector)
    return text + generate_latest(extra)


class PipelineCollector(Collector):
    """Images by tenant and status, each tenant's backlog, the outbox, upload-to-searchable
    times and run outcomes of the last `window_seconds`, from `read` (the catalog)."""

    def __init__(
        self,
        read: Callable[[], PipelineStats],
        window_seconds: float,
        cache_seconds: float = 10.0,
    ) -> None:
        self._read = read
        self._window = window_seconds
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._stats: PipelineStats | None = None
        self._read_at = float("-inf")

    def stats(self) -> PipelineStats | None:
        """The figures, read again when older than `cache_seconds`; None when the catalog
        can't be read (the scrape then says so, and goes on without them)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._cache_seconds:
                try:
                    self._stats = self._read()
                except Exception as exc:  # a scrape never fails for the catalog
                    log.warning("pipeline metrics: the catalog could not be read: %s", exc)
                    self._stats = None
                self._read_at = time.monotonic()
            return self._stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        up = GaugeMetricFamily(
            "deeplens_pipeline_metrics_up",
            "Whether the pipeline's figures could be read from the catalog (1) or not (0).",
        )
        up.add_metric([], 1 if stats is not None else 0)
        yield up
        if stats is None:
            return
        yield from self._images(stats)
        yield from self._recent(stats)

    def _images(self, stats: PipelineStats) -> Iterator[Metric]:
        images = GaugeMetricFamily(
            "deeplens_images",
            "Images in the catalog, by tenant and status.",
            labels=["tenant", "status"],
        )
        for row in stats.images:
            images.add_metric([row.tenant_id, row.status], row.images)
        yield images
        backlog = GaugeMetricFamily(
            "deeplens_backlog_images",
            "Images accepted and not yet searchable or failed (uploaded, queued, processing, "
            "retrying), by tenant.",
            labels=["tenant"],
        )
        oldest = GaugeMetricFamily(
            "deeplens_backlog_oldest_seconds",
            "How long the tenant's longest-waiting image has waited since its upload.",
            labels=["tenant"],
        )
        for tenant_id, (count, seconds) in sorted(stats.backlog().items()):
            backlog.add_metric([tenant_id], count)
            oldest.add_metric([tenant_id], seconds)
        yield backlog
        yield oldest
        yield GaugeMetricFamily(
            "deeplens_outbox_pending_events",
            "Events written to the outbox and not yet published to Kafka.",
            value=stats.outbox_pending,
        )
        yield GaugeMetricFamily(
            "deeplens_outbox_oldest_seconds",
            "Age of the oldest event not yet published (0: none).",
            value=stats.outbox_oldest_seconds,
        )

    def _recent(self, stats: PipelineStats) -> Iterator[Metric]:
        window = f"in the last {self._window:g} s (DEEPLENS_METRICS_WINDOW_SECONDS)"
        yield GaugeMetricFamily(
            "deeplens_metrics_window_seconds",
            "The recent past the deeplens_recent_* figures cover.",
            value=self._window,
        )
        yield GaugeMetricFamily(
            "deeplens_recent_searchable_images",
            f"Images that became searchable {window}.",
            value=stats.searchable,
        )
        yield GaugeMetricFamily(
            "deeplens_recent_upload_to_searchable_mean_seconds",
            f"Mean upload-to-searchable time of the images that became searchable {window}.",
            value=stats.searchable_seconds_sum / stats.searchable if stats.searchable else 0.0,
        )
        quantiles = GaugeMetricFamily(
            "deeplens_recent_upload_to_searchable_seconds",
            f"Quantiles of the upload-to-searchable times of the images searchable {window}.",
            labels=["quantile"],
        )
        for q, seconds in sorted(stats.searchable_quantiles.items()):
            quantiles.add_metric([f"{q:g}"], seconds)
        yield quantiles
        runs = GaugeMetricFamily(
            "deeplens_recent_runs_ended",
            f"Runs that ended {window}, by outcome (success, failure, canceled, lost).",
            labels=["outcome"],
        )
        for outcome, count in sorted(stats.runs_ended.items()):
            runs.add_metric([outcome], count)
        yield runs
        yield GaugeMetricFamily(
            "deeplens_runs_in_progress",
            "Runs whose worker is alive (it beats its heartbeat).",
            value=stats.runs_in_progress,
        )
