import json
from pathlib import Path

import pytest

from deeplens.model import (
    DEFAULT_MODEL,
    MODELS_FILE_ENV,
    ModelConfigError,
    ModelSpec,
    get_model,
    list_models,
)

RESNET50_TOML = """
[models.resnet50]
path = "onnx/resnet50_pooled.onnx"
input_size = 224
resize = 256
mean = [123.675, 116.28, 103.53]
std = [58.395, 57.12, 57.375]
input_node = "data"
output_node = "embedding"
dimension = 2048
"""


def test_default_model_is_the_committed_efficientnet_lite0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODELS_FILE_ENV, raising=False)
    spec = get_model()
    assert spec.name == DEFAULT_MODEL == "efficientnet_lite0"
    assert spec.dimension == 1280
    assert (spec.input_size, spec.resize) == (224, 256)
    assert (spec.mean, spec.std) == ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
    assert spec.path.is_file() and spec.path.is_absolute()
    committed = (spec.path.parent / "model.sha256").read_text().split()[0]
    assert spec.version == committed
    assert list(list_models()) == [DEFAULT_MODEL, "efficientnet_lite2"]


def test_efficientnet_lite2_is_built_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODELS_FILE_ENV, raising=False)
    spec = get_model("efficientnet_lite2")
    assert spec.dimension == 1280
    assert (spec.input_size, spec.resize) == (260, 292)
    assert (spec.mean, spec.std) == ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
    assert spec.path.is_file() and spec.path.parent.name == "efficientnet_lite2"
    committed = (spec.path.parent / "model.sha256").read_text().split()[0]
    assert spec.version == committed


def test_loads_a_user_entry_from_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    models_file = tmp_path / "models.toml"
    models_file.write_text(RESNET50_TOML)
    monkeypatch.setenv(MODELS_FILE_ENV, str(models_file))  # read when asked, not at import
    spec = get_model("resnet50")
    assert spec.dimension == 2048
    assert spec.path == tmp_path / "onnx" / "resnet50_pooled.onnx"  # relative to the file
    assert spec.mean == (123.675, 116.28, 103.53)
    assert (spec.input_node, spec.output_node) == ("data", "embedding")
    assert set(list_models()) == {"efficientnet_lite0", "efficientnet_lite2", "resnet50"}


def test_loads_a_user_entry_from_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry = {
        "path": str(tmp_path / "m.onnx"),
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "scale": 1 / 255,
        "input_node": "x",
        "output_node": "y",
        "dimension": 512,
    }
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps({"models": {"resnet18_v2": entry}}))
    monkeypatch.setenv(MODELS_FILE_ENV, str(models_file))
    spec = get_model("resnet18_v2")
    assert spec.scale == pytest.approx(1 / 255)
    assert spec.path == tmp_path / "m.onnx"


@pytest.mark.parametrize("name", ["ResNet50", "resnet-50", "resnet 50", "", "résnet"])
def test_rejects_a_name_unfit_for_collection_names(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    models_file = tmp_path / "models.toml"
    models_file.write_text(RESNET50_TOML.replace("[models.resnet50]", f'[models."{name}"]'))
    monkeypatch.setenv(MODELS_FILE_ENV, str(models_file))
    with pytest.raises(ModelConfigError, match="invalid model"):
        list_models()


def test_rejects_bad_entries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    models_file = tmp_path / "models.toml"
    monkeypatch.setenv(MODELS_FILE_ENV, str(models_file))
    for text, message in [
        (RESNET50_TOML.replace("resnet50]", "efficientnet_lite0]"), "built-in"),
        (RESNET50_TOML.replace("resize = 256", "resize = 200"), "resize"),
        (RESNET50_TOML.replace("dimension = 2048", "dimension = 2048\ncolour = 1"), "colour"),
        (RESNET50_TOML.replace("dimension = 2048", ""), "dimension"),
        ("[models\n", "cannot read"),
    ]:
        models_file.write_text(text)
        with pytest.raises(ModelConfigError, match=message):
            list_models()


def test_unknown_model_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODELS_FILE_ENV, raising=False)
    with pytest.raises(ModelConfigError, match="known: efficientnet_lite0"):
        get_model("resnet50")


def test_spec_names_are_validated_directly() -> None:
    fields = get_model().model_dump()
    assert ModelSpec(**{**fields, "name": "v2_model"}).name == "v2_model"
    with pytest.raises(ValueError, match="pattern"):
        ModelSpec(**{**fields, "name": "V2"})
