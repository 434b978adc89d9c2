"""A run's part of an upload's trace (see `deeplens.tracing`).

The upload sensor puts the W3C trace context of a batch's first upload on the run's tags
(``deeplens/traceparent``, ``deeplens/tracestate``); each step of the run works inside a span
that is a child of it, named after the step and carrying the run id, the tenant and the
correlation ids of the images it works on. In a run without the tags (a retry, a backfill) each
step's span starts a trace, carrying the same ids. A run worker is a short-lived process: each
step exports its spans as it ends.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import dagster as dg

from deeplens import tracing
from deeplens.batching import TRACE_HEADERS
from deeplens.settings import Settings

TAG_PREFIX = "deeplens/"
SERVICE = "deeplens-run"

P = ParamSpec("P")
R = TypeVar("R")


def run_tags(trace: Mapping[str, str]) -> dict[str, str]:
    """A run's tags for the trace context `trace` (W3C headers)."""
    return {TAG_PREFIX + name: trace[name] for name in TRACE_HEADERS if trace.get(name)}


def trace_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The W3C headers of the trace context on a run's tags (empty when there is none)."""
    return {name: tags[TAG_PREFIX + name] for name in TRACE_HEADERS if tags.get(TAG_PREFIX + name)}


def traced_step(step: Callable[P, R]) -> Callable[P, R]:
    """Run an asset's step inside its span (under ``@dg.asset``; the step names its images with
    `deeplens.tracing.correlate`). A step that is a generator (an asset that may not
    materialize) is traced until it is exhausted."""
    if inspect.isgeneratorfunction(step):

        @functools.wraps(step)
        def run_generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _step_span():
                yield from step(*args, **kwargs)

        return run_generator  # type: ignore[return-value]

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with _step_span():
            return step(*args, **kwargs)

    return run


@contextmanager
def _step_span() -> Iterator[None]:
    context = dg.AssetExecutionContext.get()
    name = context.asset_key.to_user_string()
    attributes = {
        "dagster.run_id": context.run.run_id,
        "dagster.step": name,
        tracing.TENANT_ID: context.partition_key,
    }
    _configure()
    try:
        with tracing.span(f"ingest {name}", trace_of(context.run.tags), attributes=attributes):
            yield
    finally:
        tracing.flush()


@functools.cache
def _configure() -> bool:
    return tracing.configure(Settings(), SERVICE)
