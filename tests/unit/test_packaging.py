"""A wheel is complete on its own: the default model and the local stack's Dagster instance and
workspace are inside it, so that `pip install .` outside the checkout gives a working
`deeplens` (see the README's "Deploying")."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_wheel_carries_the_model_and_the_instance_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
    )
    (wheel,) = tmp_path.glob("deeplens-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        *(
            f"deeplens/model/files/{model}/{name}"
            for model in ("efficientnet_lite0", "efficientnet_lite2")
            for name in ("model.onnx", "model.sha256", "LICENSE")
        ),
        "deeplens_local/stack/dagster.yaml",
        "deeplens_local/stack/workspace.yaml",
        "deeplens_cli/main.py",
        "search_api/main.py",
        "deeplens_dagster/definitions.py",
    ):
        assert expected in names, f"{expected} is missing from {wheel.name}"
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("deeplens_local/stack/dagster.yaml")
    assert packaged == (ROOT / "dagster.yaml").read_bytes()


def test_the_production_commands_do_not_load_the_local_stack() -> None:
    code = (
        "import sys, deeplens_cli.main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('deeplens_local', 'dagster', 'deeplens_dagster', 'search_api')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
