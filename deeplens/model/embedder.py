"""The one embedder: image bytes to L2-normalised vectors with an ONNX model on the CPU.

Used by the Dagster assets (bulk, `embed_bytes`) and the search API (one query, `embed_one`); it
imports neither. Decoding happens in a small thread pool that runs ahead of inference, so Pillow's
work on the next chunk overlaps ONNX Runtime's on this one. A session is thread-safe: one embedder
can serve concurrent requests.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import TypeVar

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image

from deeplens.model.imaging import DECODE_ERRORS, DEFAULT_MAX_PIXELS, ImageError, decode
from deeplens.model.preprocess import fit, fit_array, to_input
from deeplens.model.registry import ModelConfigError, ModelSpec, get_model

logger = logging.getLogger(__name__)

K = TypeVar("K")

DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_DECODE_THREADS = 2


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Embeddings:
    """Vectors for a batch of images, some of which may have failed to decode.

    `vectors` has one row per input; the rows of failed inputs are NaN and their reasons are in
    `errors`, keyed by input index.
    """

    vectors: NDArray[np.float32]
    errors: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def ok(self) -> list[int]:
        """Indices of the inputs that have a vector."""
        return [i for i in range(len(self.vectors)) if i not in self.errors]

    def get(self, index: int) -> NDArray[np.float32] | None:
        """The vector for input `index`, or None if it failed."""
        return None if index in self.errors else self.vectors[index]


class Embedder:
    """Decode, preprocess and embed images with one model (see `ModelSpec`).

    threads: ONNX Runtime intra-op threads (default: the CPUs in this process's affinity mask).
    max_batch_size: images per model call. decode_threads: Pillow workers for `embed_bytes`
    (0 decodes inline). max_pixels: images whose header claims more are refused. max_decode_bytes:
    images whose decode would take more memory fail alone (`imaging.decode_cost`); decode_budget
    names that budget in the refusal.
    allow_spinning: whether ONNX Runtime's threads busy-wait between calls; default: only when
    decoding inline. Spinning saves about 1 ms on a single image (the search API's case) but
    takes cores from a decode pool (bulk `embed_bytes` is about 8% faster without it).
    """

    def __init__(
        self,
        spec: ModelSpec | str | None = None,
        *,
        threads: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        decode_threads: int = DEFAULT_DECODE_THREADS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        allow_spinning: bool | None = None,
        max_decode_bytes: int | None = None,
        decode_budget: str = "the run worker's budget (DEEPLENS_DECODE_BUDGET_MB)",
    ) -> None:
        self.spec = spec if isinstance(spec, ModelSpec) else get_model(spec)
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.threads = threads or available_cpus()
        self.decode_threads = decode_threads
        self.max_pixels = max_pixels
        self.max_decode_bytes = max_decode_bytes
        self.decode_budget = decode_budget
        spinning = decode_threads == 0 if allow_spinning is None else allow_spinning
        self._session = _open_session(self.spec, self.threads, spinning)
        batch_axis = self._session.get_inputs()[0].shape[0]
        if batch_axis == 1:  # exported with a fixed batch of one: still works, image by image
            max_batch_size = 1
        elif isinstance(batch_axis, int):
            raise ModelConfigError(f"{self.spec.path}: fixed batch size {batch_axis}; need 1 or N")
        self.max_batch_size = max_batch_size
        self._pool = (
            ThreadPoolExecutor(decode_threads, "deeplens-decode") if decode_threads else None
        )
        logger.info(
            "loaded model %s (%s, dim %d, %d threads)",
            self.spec.name,
            self.spec.path,
            self.spec.dimension,
            self.threads,
        )

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    @property
    def version(self) -> str:
        """The model file's sha256 (for run metadata and vector payloads)."""
        return self.spec.version

    def close(self) -> None:
        """Stop the decode pool (the session is freed with the object)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, data: bytes) -> NDArray[np.uint8]:
        """Decode and fit one image: its (S, S, 3) uint8 crop. Raises `ImageError`."""
        image = decode(
            data,
            min_side=self.spec.resize,
            max_pixels=self.max_pixels,
            max_bytes=self.max_decode_bytes,
            budget=self.decode_budget,
        )
        return fit(image, self.spec)

    def embed_one(self, data: bytes) -> NDArray[np.float32]:
        """One image's (dimension,) vector. Raises `ImageError` if it cannot be decoded."""
        crop = self.prepare(data)
        return self.embed_crops(crop[None])[0]

    def embed_bytes(self, images: Sequence[bytes]) -> Embeddings:
        """Embed encoded images; an image that fails to decode fails alone (see `Embeddings`)."""
        vectors = np.full((len(images), self.dimension), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        for batch in self._decoded_batches(enumerate(images)):
            for i, vector_or_error in self._embed_batch(batch):
                if isinstance(vector_or_error, str):
                    errors[i] = vector_or_error
                else:
                    vectors[i] = vector_or_error
        return Embeddings(vectors, errors)

    def embed_stream(self, chunks: Iterable[Sequence[bytes]]) -> Iterator[Embeddings]:
        """Embed chunk after chunk: one `Embeddings` per input chunk, in order.

        Unlike `embed_bytes` called per chunk, decoding runs ahead across chunk boundaries, so
        the model never waits for the first images of the next chunk; a chunk is taken from
        `chunks` only when its images are about to be decoded (the caller may load it lazily).
        """
        results: dict[int, tuple[NDArray[np.float32], dict[int, str], list[int]]] = {}

        def tagged() -> Iterator[tuple[tuple[int, int], bytes]]:
            for n, chunk in enumerate(chunks):
                vectors = np.full((len(chunk), self.dimension), np.nan, dtype=np.float32)
                results[n] = (vectors, {}, [len(chunk)])
                yield from (((n, i), data) for i, data in enumerate(chunk))

        next_out = 0
        batches = self._decoded_batches(tagged())
        while True:
            batch = next(batches, None)
            for (n, i), vector_or_error in self._embed_batch(batch or []):
                vectors, errors, remaining = results[n]
                if isinstance(vector_or_error, str):
                    errors[i] = vector_or_error
                else:
                    vectors[i] = vector_or_error
                remaining[0] -= 1
            while next_out in results and results[next_out][2][0] == 0:
                vectors, errors, _ = results.pop(next_out)
                next_out += 1
                yield Embeddings(vectors, errors)
            if batch is None:
                return

    def embed_images(self, images: Sequence[Image.Image]) -> NDArray[np.float32]:
        """Embed decoded Pillow images (any size and mode)."""
        return self._embed_fitted([fit(image, self.spec) for image in images])

    def embed_arrays(self, arrays: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Embed (H, W, 3) uint8 RGB arrays of any size."""
        return self._embed_fitted([fit_array(array, self.spec) for array in arrays])

    def embed_crops(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Embed (N, S, S, 3) uint8 crops already fitted to the model's input size."""
        out = np.empty((len(crops), self.dimension), dtype=np.float32)
        for start in range(0, len(crops), self.max_batch_size):
            chunk = crops[start : start + self.max_batch_size]
            out[start : start + len(chunk)] = self.run(to_input(chunk, self.spec))
        return out

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """One model call on a preprocessed input batch; returns L2-normalised (N, dim) rows."""
        (features,) = self._session.run([self.spec.output_node], {self.spec.input_node: batch})
        features = np.asarray(features, dtype=np.float32).reshape(len(batch), -1)
        if features.shape[1] != self.dimension:
            raise ModelConfigError(
                f"model {self.spec.name} returned {features.shape[1]} values per image, "
                f"its spec says {self.dimension}"
            )
        return l2_normalise(features)

    def _embed_fitted(self, crops: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
        if not crops:
            return np.empty((0, self.dimension), dtype=np.float32)
        return self.embed_crops(np.stack(crops))

    def _decoded_batches(
        self, items: Iterable[tuple[K, bytes]]
    ) -> Iterator[list[tuple[K, NDArray[np.uint8] | str]]]:
        """Decode and fit `(key, bytes)` items in batches of `max_batch_size`; a failure is its
        reason as a string. With a pool, decoding runs up to two batches ahead of the consumer.
        """
        it = iter(items)
        size = self.max_batch_size
        if self._pool is None:
            while batch := list(islice(it, size)):
                yield [(key, self._prepare_safe(data)) for key, data in batch]
            return
        pool = self._pool
        pending: deque[list[tuple[K, Future[NDArray[np.uint8] | str]]]] = deque()
        while batch := list(islice(it, size)):
            pending.append([(key, pool.submit(self._prepare_safe, data)) for key, data in batch])
            if len(pending) > 2:
                yield [(key, future.result()) for key, future in pending.popleft()]
        while pending:
            yield [(key, future.result()) for key, future in pending.popleft()]

    def _embed_batch(
        self, batch: list[tuple[K, NDArray[np.uint8] | str]]
    ) -> list[tuple[K, NDArray[np.float32] | str]]:
        """One model call on a decoded batch; failed items keep their reason."""
        ok = [(key, crop) for key, crop in batch if not isinstance(crop, str)]
        out: list[tuple[K, NDArray[np.float32] | str]] = [
            (key, crop) for key, crop in batch if isinstance(crop, str)
        ]
        if ok:
            vectors = self.embed_crops(np.stack([crop for _, crop in ok]))
            out.extend((key, vector) for (key, _), vector in zip(ok, vectors, strict=True))
        return out

    def _prepare_safe(self, data: bytes) -> NDArray[np.uint8] | str:
        try:
            return self.prepare(data)
        except ImageError as exc:
            return str(exc)
        except DECODE_ERRORS as exc:  # damage Pillow only notices while resampling
            return f"cannot decode image: {exc}"


def l2_normalise(x: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _open_session(spec: ModelSpec, threads: int, spinning: bool) -> ort.InferenceSession:
    if not spec.path.is_file():
        raise ModelConfigError(f"model file for {spec.name} not found: {spec.path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(spec.path), options, providers=["CPUExecutionProvider"])
    inputs = {node.name: node for node in session.get_inputs()}
    if len(inputs) != 1:
        raise ModelConfigError(f"{spec.path}: expected one input, has {sorted(inputs)}")
    outputs = {node.name: node for node in session.get_outputs()}
    if spec.input_node not in inputs:
        raise ModelConfigError(f"{spec.path}: no input '{spec.input_node}' (has {sorted(inputs)})")
    if spec.output_node not in outputs:
        raise ModelConfigError(
            f"{spec.path}: no output '{spec.output_node}' (has {sorted(outputs)}); "
            "`deeplens model nodes` lists candidates and `deeplens model cut` makes one an output"
        )
    dims = [d for d in outputs[spec.output_node].shape[1:] if isinstance(d, int)]
    if dims and int(np.prod(dims)) != spec.dimension:
        raise ModelConfigError(
            f"{spec.path}: output '{spec.output_node}' has shape "
            f"{outputs[spec.output_node].shape}, not {spec.dimension} values per image"
        )
    return session
