import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from deeplens.model import Embedder, ImageError
from deeplens.model.embedder import DEFAULT_MAX_BATCH_SIZE
from deeplens.model.imaging import decode
from deeplens_local import synthetic
from deeplens_local.model.benchmark import measure


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return [synthetic.photo_bytes(seed, 320, 240) for seed in range(20)]


def test_vectors_are_unit_length_float32(embedder: Embedder, jpegs: list[bytes]) -> None:
    result = embedder.embed_bytes(jpegs)
    assert result.vectors.dtype == np.float32
    assert result.vectors.shape == (20, 1280)
    assert not result.errors and result.ok == list(range(20))
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-6)


def test_batched_equals_one_by_one(embedder: Embedder, jpegs: list[bytes]) -> None:
    batched = embedder.embed_bytes(jpegs).vectors  # chunks of max_batch_size, decoded in a pool
    singles = np.stack([embedder.embed_one(data) for data in jpegs])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_every_entry_point_gives_the_same_vector(embedder: Embedder) -> None:
    image = synthetic.photo(7, 400, 300)
    png = synthetic.encode(image, "PNG")
    from_bytes = embedder.embed_one(png)
    np.testing.assert_allclose(embedder.embed_images([image])[0], from_bytes, atol=1e-6)
    np.testing.assert_allclose(embedder.embed_arrays([np.asarray(image)])[0], from_bytes, atol=1e-6)


def test_jpeg_draft_decode_is_close_to_full_decode(embedder: Embedder) -> None:
    for seed in (1, 2):
        big = synthetic.photo_bytes(seed, 1920, 1080, "JPEG")
        drafted = embedder.embed_one(big)  # decoded at 1/4 scale (480 x 270)
        full = embedder.embed_images([decode(big)])[0]  # decoded at 1920 x 1080, then resampled
        assert float(drafted @ full) > 0.99  # measured 0.996-0.999


def test_a_bad_image_fails_alone(embedder: Embedder, jpegs: list[bytes]) -> None:
    batch = [jpegs[0], b"not an image", jpegs[1][:3000], jpegs[2], b""]
    result = embedder.embed_bytes(batch)
    assert sorted(result.errors) == [1, 2, 4]
    assert "not a recognised image" in result.errors[1]
    assert "truncated" in result.errors[2]
    assert "empty" in result.errors[4]
    assert result.ok == [0, 3]
    assert np.isnan(result.vectors[[1, 2, 4]]).all()
    assert result.get(1) is None
    third = result.get(3)
    assert third is not None
    np.testing.assert_allclose(third, embedder.embed_one(jpegs[2]), atol=1e-5)
    np.testing.assert_allclose(result.vectors[0], embedder.embed_one(jpegs[0]), atol=1e-5)


def test_a_stream_of_chunks_gives_what_each_chunk_gives_alone(
    embedder: Embedder, jpegs: list[bytes]
) -> None:
    # Chunk edges fall inside inference batches; empty chunks and bad images keep their place.
    chunks = [jpegs[:5], [], [jpegs[5], b"not an image", *jpegs[6:17]], [b""], jpegs[17:], []]
    results = list(embedder.embed_stream(iter(chunks)))
    assert len(results) == len(chunks)
    for chunk, result in zip(chunks, results, strict=True):
        alone = embedder.embed_bytes(chunk)
        assert result.vectors.shape == (len(chunk), 1280)
        assert sorted(result.errors) == sorted(alone.errors)
        np.testing.assert_allclose(result.vectors[result.ok], alone.vectors[alone.ok], atol=1e-5)
    assert sorted(results[2].errors) == [1] and sorted(results[3].errors) == [0]


def test_a_stream_takes_chunks_only_as_decoding_needs_them(embedder: Embedder) -> None:
    small = [synthetic.photo_bytes(seed, 64, 48) for seed in range(4)]
    pulled = 0

    def counted() -> Iterator[list[bytes]]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield small

    first = next(embedder.embed_stream(counted()))
    assert len(first) == 4
    # Decoding runs at most a few inference batches ahead, not through the whole input.
    assert pulled <= 3 * embedder.max_batch_size // len(small) + 2


def test_embed_one_raises_for_a_bad_image(embedder: Embedder) -> None:
    with pytest.raises(ImageError):
        embedder.embed_one(b"GIF89a not really")


def test_all_failures_and_empty_input(embedder: Embedder) -> None:
    result = embedder.embed_bytes([b"x", b"y"])
    assert result.vectors.shape == (2, 1280) and sorted(result.errors) == [0, 1]
    assert embedder.embed_bytes([]).vectors.shape == (0, 1280)
    assert embedder.embed_images([]).shape == (0, 1280)


def test_greyscale_palette_cmyk_and_16_bit_images_decode_to_rgb(embedder: Embedder) -> None:
    image = synthetic.photo(9, 300, 200)
    grey = np.asarray(image.convert("L"))
    sources = [
        (image.convert("L"), "PNG", image.convert("L")),
        (image.convert("P"), "PNG", image.convert("P")),
        (image.convert("CMYK"), "JPEG", image),
        (Image.fromarray(grey.astype(np.uint16) * 257), "PNG", image.convert("L")),  # I;16
    ]
    encoded = []
    for source, fmt, expected in sources:
        buffer = io.BytesIO()
        source.save(buffer, format=fmt)
        encoded.append(buffer.getvalue())
        got = np.asarray(decode(buffer.getvalue())).astype(int)
        want = np.asarray(expected.convert("RGB"))
        assert got.shape == want.shape
        assert np.abs(got - want).mean() < 3, source.mode  # CMYK via JPEG: a little lossy
    result = embedder.embed_bytes(encoded)
    assert not result.errors
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-6)


def test_threads_and_batch_size_are_configurable() -> None:
    with Embedder(threads=1, max_batch_size=3, decode_threads=0) as small:
        assert (small.threads, small.max_batch_size) == (1, 3)
        vectors = small.embed_bytes([synthetic.photo_bytes(s, 160, 120) for s in range(7)]).vectors
    assert vectors.shape == (7, 1280)
    with pytest.raises(ValueError):
        Embedder(max_batch_size=0)


def test_image_smaller_than_the_input_is_upscaled(embedder: Embedder) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (30, 120, 200)).save(buffer, format="PNG")
    assert embedder.embed_one(buffer.getvalue()).shape == (1280,)


def test_benchmark_reports_every_stage() -> None:
    rows = dict(measure(images=2, rounds=1, sizes=((64, 48),), batch_sizes=(1, 2)))
    assert set(rows) == {
        "decode + preprocess 64x48",
        "inference batch 1",
        "inference batch 2",
        f"embed_bytes 64x48, batch {DEFAULT_MAX_BATCH_SIZE}, decode_threads 0",
        f"embed_bytes 64x48, batch {DEFAULT_MAX_BATCH_SIZE}, decode_threads 2",
    }
    assert all(ms > 0 for ms in rows.values())
