"""Dagster's instance and workspace files for the local stack.

They are the repository's top-level `dagster.yaml` and `workspace.yaml`; a wheel carries them
beside this module (pyproject.toml force-includes them), so an installed `deeplens up` needs no
source checkout. An editable install finds them in the checkout.
"""

from __future__ import annotations

from pathlib import Path

INSTANCE = "dagster.yaml"
WORKSPACE = "workspace.yaml"


def project_file(name: str) -> Path:
    here = Path(__file__).resolve()
    for candidate in (here.with_name(name), here.parents[2] / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} is neither packaged beside {here} nor in a source checkout")
