"""Upload validation as pure functions: sniffing, size limit, probe, metadata, text fields."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from search_api import validation
from tests.api import samples


def rejected(fn: object, *args: object) -> HTTPException:
    with pytest.raises(HTTPException) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.detail, "a rejection must say why"
    return info.value


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (samples.jpeg(), "image/jpeg"),
        (samples.png(), "image/png"),
        (samples.webp(), "image/webp"),
        (b"GIF89a" + b"\0" * 10, "image/gif"),
        (b"BM" + b"\0" * 14, "image/bmp"),
        (samples.tiff(), "image/tiff"),
        (samples.TEXT, None),
        (b"", None),
        (b"RIFF\0\0\0\0WAVEfmt ", None),
    ],
)
def test_sniff_reads_magic_bytes(data: bytes, mime: str | None) -> None:
    assert validation.sniff(data[:16]) == mime


def test_valid_images_are_probed_for_size_and_type() -> None:
    info = validation.inspect_image(samples.jpeg(3, 320, 240))
    assert (info.mime, info.width, info.height) == ("image/jpeg", 320, 240)
    info = validation.inspect_image(samples.png(3, 64, 48))
    assert (info.mime, info.width, info.height) == ("image/png", 64, 48)
    assert validation.inspect_image(samples.webp()).mime == "image/webp"


def test_empty_file_is_400() -> None:
    error = rejected(validation.inspect_image, b"")
    assert error.status_code == 400
    assert "empty" in str(error.detail)


def test_text_is_415_whatever_its_name() -> None:
    error = rejected(validation.inspect_image, samples.TEXT)
    assert error.status_code == 415
    assert "not an image" in str(error.detail)


def test_truncated_jpeg_is_400() -> None:
    error = rejected(validation.inspect_image, samples.truncated_jpeg())
    assert error.status_code == 400
    assert "truncated" in str(error.detail)


def test_jpeg_missing_only_its_end_marker_is_400() -> None:
    data = samples.jpeg(4)
    assert data.endswith(b"\xff\xd9")
    assert rejected(validation.inspect_image, data[:-2]).status_code == 400


def test_jpeg_header_alone_is_400() -> None:
    data = samples.jpeg(5)
    scan_start = data.index(b"\xff\xda")
    assert rejected(validation.inspect_image, data[: scan_start + 20]).status_code == 400


def test_decompression_bomb_header_is_413() -> None:
    error = rejected(validation.inspect_image, samples.bomb_png())
    assert error.status_code == 413
    assert "pixels" in str(error.detail)


def test_bomb_within_pillow_limit_but_over_ours_is_413() -> None:
    error = rejected(validation.inspect_image, samples.bomb_png(9_000), 64_000_000)
    assert error.status_code == 413


def test_format_outside_the_pipeline_is_415() -> None:
    error = rejected(validation.inspect_image, samples.tiff())
    assert error.status_code == 415
    assert "image/tiff" in str(error.detail)


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_no_metadata_is_an_empty_object(raw: str | None) -> None:
    assert validation.parse_metadata(raw) == {}


def test_metadata_object_is_parsed() -> None:
    assert validation.parse_metadata('{"sku": "A-1", "tags": ["x"], "n": 2}') == {
        "sku": "A-1",
        "tags": ["x"],
        "n": 2,
    }


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("[1, 2]", "JSON object"),
        ('"text"', "JSON object"),
        ("42", "JSON object"),
        ("null", "JSON object"),
        ("{not json", "not valid JSON"),
        ('{"x": NaN}', "not JSON"),
        ('{"x": "a\\u0000b"}', "NUL"),
        ('{"x": "' + "y" * 20_000 + '"}', "limit"),
    ],
)
def test_bad_metadata_is_400(raw: str, hint: str) -> None:
    error = rejected(validation.parse_metadata, raw)
    assert error.status_code == 400
    assert hint in str(error.detail)


def test_file_name_drops_paths_and_control_characters() -> None:
    assert validation.file_name("../../etc/passwd", "image/png") == "passwd"
    assert validation.file_name("C:\\photos\\cat.jpg", "image/jpeg") == "cat.jpg"
    assert validation.file_name("a\x00b\nc.png", "image/png") == "abc.png"
    assert validation.file_name(None, "image/jpeg") == "upload.jpg"
    assert validation.file_name("..", "image/webp") == "upload.webp"
    assert len(validation.file_name("x" * 1000 + ".jpg", "image/jpeg")) == 255


def test_clean_text_limits_length() -> None:
    assert validation.clean_text("  alice\x00 ", "uploadedBy", 10) == "alice"
    assert validation.clean_text("   ", "uploadedBy", 10) is None
    assert rejected(validation.clean_text, "x" * 11, "uploadedBy", 10).status_code == 400
