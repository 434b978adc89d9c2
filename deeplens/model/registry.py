"""Model registry: the built-in EfficientNet-Lite0 (default) and -Lite2, plus user entries from
`DEEPLENS_MODELS_FILE`.

A model is a `ModelSpec`: which ONNX file, how to preprocess for it, which nodes to feed and read,
and the vector dimension. The model's name becomes part of Qdrant collection names, so it is
restricted to `[a-z0-9_]+`. The models file (TOML or JSON, see `files/README.md` beside this
module; `DEEPLENS_MODELS_FILE`) is read each time the registry is asked, never at import.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

MODELS_FILE_ENV = "DEEPLENS_MODELS_FILE"  # Settings.models_file
DEFAULT_MODEL = "efficientnet_lite0"
NAME_PATTERN = r"^[a-z0-9_]+$"

ModelName = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
Triple = tuple[float, float, float]


class ModelConfigError(ValueError):
    """A model entry or models file is invalid, or a model name is unknown."""


class ModelSpec(BaseModel):
    """Everything needed to turn an image into this model's vector.

    Preprocessing: decode to RGB, scale the short side to `resize`, centre-crop `input_size`
    square, reorder channels to `channel_order`, lay out as `layout`, then per channel
    `(pixel * scale - mean) / std` with pixels in 0..255 and mean/std given in `channel_order`.
    The output node's vector is L2-normalised.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ModelName
    path: Path = Field(description="the .onnx file")
    input_size: PositiveInt = Field(default=224, description="side of the square model input")
    resize: PositiveInt = Field(default=256, description="short side before the centre crop")
    resample: Literal["bilinear", "bicubic"] = "bilinear"
    scale: float = Field(
        default=1.0, gt=0, description="pixels (0..255) are multiplied by this first"
    )
    mean: Triple
    std: Triple
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    input_node: str = Field(min_length=1)
    output_node: str = Field(min_length=1)
    dimension: PositiveInt
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.resize < self.input_size:
            raise ValueError(f"resize ({self.resize}) must be >= input_size ({self.input_size})")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")
        return self

    @cached_property
    def version(self) -> str:
        """sha256 of the model file (computed on first use, cached)."""
        return file_sha256(self.path)


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, cached while its size and mtime are unchanged."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def builtin_models_dir() -> Path:
    """Where the committed models live: in the package, beside this module (wheel or checkout)."""
    return Path(__file__).resolve().parent / "files"


def builtin_models() -> dict[str, ModelSpec]:
    """The committed EfficientNet-Lite models, exported alike by `scripts/export_model.py`."""
    common: dict[str, Any] = {
        "resample": "bicubic",
        "mean": (127.0, 127.0, 127.0),
        "std": (128.0, 128.0, 128.0),
        "input_node": "input",
        "output_node": "embedding",
        "dimension": 1280,
    }
    # name, input size, resize (TensorFlow's eval crop: S / (S + 32) of the short side), label
    variants = [
        (DEFAULT_MODEL, 224, 256, "EfficientNet-Lite0"),
        ("efficientnet_lite2", 260, 292, "EfficientNet-Lite2"),
    ]
    return {
        name: ModelSpec(
            name=name,
            path=builtin_models_dir() / name / "model.onnx",
            input_size=size,
            resize=resize,
            description=f"{label} (ImageNet, Apache-2.0), global average pool features",
            **common,
        )
        for name, size, resize, label in variants
    }


def load_models_file(path: str | os.PathLike[str]) -> dict[str, ModelSpec]:
    """Parse a TOML or JSON models file: a `models` table keyed by model name.

    Relative `path` values are resolved against the file's directory.
    """
    file = Path(path).expanduser().resolve()
    try:
        text = file.read_text(encoding="utf-8")
        raw: Any = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ModelConfigError(f"cannot read models file {file}: {exc}") from exc
    entries = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise ModelConfigError(f"{file}: expected a 'models' table keyed by model name")
    specs: dict[str, ModelSpec] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ModelConfigError(f"{file}: models.{name} must be a table")
        fields = {**entry, "name": name}
        if "path" in fields:
            fields["path"] = file.parent / Path(fields["path"]).expanduser()
        try:
            specs[name] = ModelSpec.model_validate(fields)
        except ValidationError as exc:
            raise ModelConfigError(f"{file}: invalid model '{name}': {exc}") from exc
    return specs


def list_models() -> dict[str, ModelSpec]:
    """Built-in models plus those in the file named by `DEEPLENS_MODELS_FILE`, if set."""
    from deeplens.settings import Settings  # read when asked, never at import

    models = builtin_models()
    models_file = Settings().models_file
    if models_file:
        for name, spec in load_models_file(models_file).items():
            if name in models:
                raise ModelConfigError(
                    f"{models_file}: '{name}' is a built-in model; give your entry another name"
                )
            models[name] = spec
    return models


def get_model(name: str | None = None) -> ModelSpec:
    """The spec registered under `name` (default: the built-in EfficientNet-Lite0)."""
    models = list_models()
    key = name or DEFAULT_MODEL
    try:
        return models[key]
    except KeyError:
        known = ", ".join(sorted(models))
        raise ModelConfigError(
            f"unknown model '{key}' (known: {known}; add entries via {MODELS_FILE_ENV})"
        ) from None
