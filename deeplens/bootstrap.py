"""One-off set-up of a deployment: catalog migrations, Kafka topics, and re-driving unfinished
images. `deeplens migrate` runs it (as a Kubernetes Job, say); `deeplens up` calls the same code.

Every step is idempotent, so running it again (each deploy, each `deeplens up`) is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg

from deeplens import kafka
from deeplens.catalog import images, schema
from deeplens.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Migrated:
    """What a migration did."""

    schema_version: int
    topics_created: list[str] = field(default_factory=list)
    redriven: int = 0


def migrate(settings: Settings, redrive_idle_seconds: float | None = None) -> Migrated:
    """Bring the catalog's schema up to date, create missing topics and re-drive images.

    `redrive_idle_seconds`: send the upload event again for every image not yet taken up (or
    processed) for that long; 0 re-drives every unfinished image (a broker that lost its log,
    such as the embedded in-memory one); None skips this step.
    """
    with psycopg.connect(settings.require("database_url"), autocommit=True) as conn:
        version = schema.migrate(conn)
    created = kafka.ensure_topics(settings)
    redriven = 0
    if redrive_idle_seconds is not None:
        with psycopg.connect(settings.require("database_url"), autocommit=True) as conn:
            redriven = images.requeue_unfinished(conn, idle_seconds=redrive_idle_seconds)
        if redriven:
            log.warning("re-sent the upload events of %d unfinished image(s)", redriven)
    return Migrated(schema_version=version, topics_created=created, redriven=redriven)
