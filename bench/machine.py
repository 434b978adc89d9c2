"""Where and on what a run happened: date, commit, machine, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from deeplens.model.embedder import available_cpus

ROOT = Path(__file__).resolve().parents[1]
MEASURED = (
    "deeplens",
    "deeplens_dagster",
    "search_api",
    "models",
    "dagster.yaml",
    "pyproject.toml",
)
PACKAGES = (
    "onnxruntime",
    "numpy",
    "pillow",
    "dagster",
    "qdrant-client",
    "qdrant-edge-py",
    "fastapi",
)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        # Uncommitted or untracked changes in what the bench measures.
        "git_dirty": bool(_git("status", "--porcelain", "--", *MEASURED)),
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "cpus_available": available_cpus(),
            "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {name: _version(name) for name in PACKAGES},
    }
