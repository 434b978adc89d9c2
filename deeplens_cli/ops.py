"""Production commands: `deeplens migrate` (a deployment's one-off job) and `deeplens relay`."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from deeplens import bootstrap, clients, tracing
from deeplens.cache import SearchCache
from deeplens.relay import OutboxRelay
from deeplens.settings import Settings


def migrate(
    redrive_idle_seconds: Annotated[
        float | None,
        typer.Option(
            help=(
                "Send the upload event again for images unfinished and idle this long "
                "(0: every unfinished image, for a broker that lost its log)."
            ),
        ),
    ] = None,
) -> None:
    """Apply catalog migrations and create the Kafka topics (idempotent: run on every deploy).

    Topic partitions and replication factor come from DEEPLENS_KAFKA_TOPIC_PARTITIONS and
    DEEPLENS_KAFKA_REPLICATION_FACTOR.
    """
    done = bootstrap.migrate(Settings(), redrive_idle_seconds=redrive_idle_seconds)
    typer.echo(f"catalog schema at version {done.schema_version}")
    typer.echo(f"topics created: {', '.join(done.topics_created) or 'none (all exist)'}")
    if redrive_idle_seconds is not None:
        typer.echo(f"upload events sent again: {done.redriven}")


def relay() -> None:
    """Run the outbox relay on its own (then set DEEPLENS_RELAY_IN_API=false for the API)."""
    settings = Settings()
    tracing.configure(settings, "deeplens-relay")
    cache = SearchCache(clients.redis_client(settings)) if settings.redis_url else None
    outbox = OutboxRelay(settings, on_completed=cache.invalidate if cache else None)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    outbox.start()
    typer.echo("outbox relay running; Ctrl-C or SIGTERM stops it")
    stop.wait()
    outbox.stop()
    if cache is not None:
        cache.close()
    typer.echo(f"outbox relay stopped after publishing {outbox.published} event(s)")
