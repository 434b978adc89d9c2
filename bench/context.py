"""What the phases share: the system under test, the workload, the config, and what earlier
phases found (image ids, the model time)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.api import System, Tenant
from bench.config import BenchConfig
from bench.monitor import Monitor
from bench.workload import Workload
from deeplens_local.stack.stack import Stack

log = logging.getLogger("bench")


@dataclass
class Context:
    system: System
    config: BenchConfig
    workload: Workload
    monitor: Monitor
    out_dir: Path
    stem: str
    stack: Stack | None = None
    bulk_tenant: Tenant | None = None
    bulk_ids: dict[int, str] = field(default_factory=dict)  # seed -> image id
    raw_images_per_second: float | None = None
    model_ms_p50: float | None = None
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)

    def artefact(self, name: str) -> Path:
        """A file written next to the results: `<stem>-<name>`."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / f"{self.stem}-{name}"

    @property
    def profile_dir(self) -> Path:
        """py-spy's raw stacks (megabytes; not for committing): `<stem>-profiles/`."""
        path = self.out_dir / f"{self.stem}-profiles"
        path.mkdir(parents=True, exist_ok=True)
        return path


def say(message: str) -> None:
    """Progress for the person running the bench (stderr, so stdout holds only the table)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
