"""The embedding model: registry, image decoding, preprocessing, the embedder, ONNX cutting."""

from deeplens.model.embedder import Embedder, Embeddings
from deeplens.model.imaging import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageInfo,
    ImageTooLargeError,
    UnsupportedImageError,
    probe,
)
from deeplens.model.registry import (
    DEFAULT_MODEL,
    MODELS_FILE_ENV,
    ModelConfigError,
    ModelSpec,
    get_model,
    list_models,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_FILE_ENV",
    "CorruptImageError",
    "Embedder",
    "Embeddings",
    "EmptyImageError",
    "ImageError",
    "ImageInfo",
    "ImageTooLargeError",
    "ModelConfigError",
    "ModelSpec",
    "UnsupportedImageError",
    "get_model",
    "list_models",
    "probe",
]
