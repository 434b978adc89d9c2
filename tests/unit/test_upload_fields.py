"""An upload's metadata, file name and uploader as the API keeps them: metadata refused with a
reason unless the stores keep it as sent; names and text kept only as they can be shown safely."""

from __future__ import annotations

import unicodedata

import pytest
from fastapi import HTTPException

from search_api import validation
from tests.api import samples


@pytest.mark.parametrize("case", samples.BAD_METADATA)
def test_malformed_metadata_is_400_with_the_reason(case: str) -> None:
    raw, hint = samples.BAD_METADATA[case]
    with pytest.raises(HTTPException) as info:
        validation.parse_metadata(raw)
    assert info.value.status_code == 400
    assert hint in str(info.value.detail)


@pytest.mark.parametrize("raw", [None, b"", b"  \n", ""])
def test_no_metadata_is_an_empty_object(raw: bytes | str | None) -> None:
    assert validation.parse_metadata(raw) == {}


def test_metadata_keeps_what_was_sent() -> None:
    raw = '{"title": "caf\u00e9 \U0001f600", "n": 9223372036854775807, "nested": [[{"x": 0.5}]]}'
    assert validation.parse_metadata(raw.encode()) == {
        "title": "caf\u00e9 \U0001f600",
        "n": 2**63 - 1,
        "nested": [[{"x": 0.5}]],
    }


@pytest.mark.parametrize(
    ("declared", "kept"),
    [
        ("holiday.jpg", "holiday.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\photos\\cat.jpg", "cat.jpg"),
        # U+202E (right-to-left override) would show "invoice\u202egpj.exe" as "invoiceexe.jpg".
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("a\u202ab\u202bc\u202cd\u202de\u2066f\u2067g\u2068h\u2069i.png", "abcdefghi.png"),
        ("\u200ename\u200f\u061c.png", "name.png"),
        ("line\u2028para\u2029.png", "linepara.png"),
        ("nul\x00tab\tnl\ncr\r\x1b[31mdel\x7fnel\x85.png", "nultabnlcr[31mdelnel.png"),
        ("cafe\u0301.jpg", "caf\u00e9.jpg"),  # NFC: one code point, as typed elsewhere
        ("  spaced .jpg  ", "spaced .jpg"),
        (
            "\U0001f468\u200d\U0001f469\u200d\U0001f467.jpg",
            "\U0001f468\u200d\U0001f469\u200d\U0001f467.jpg",
        ),
        ("\u05e9\u05dc\u05d5\u05dd.jpg", "\u05e9\u05dc\u05d5\u05dd.jpg"),  # RTL letters stay
    ],
)
def test_file_names_are_kept_as_they_can_be_shown_safely(declared: str, kept: str) -> None:
    assert validation.file_name(declared, "image/png") == kept


@pytest.mark.parametrize("declared", [None, "", "   ", ".", "..", "\u202e\u2028\x00", "dir/"])
def test_a_file_name_with_nothing_left_becomes_a_default(declared: str | None) -> None:
    assert validation.file_name(declared, "image/webp") == "upload.webp"
    assert validation.file_name(declared, "image/unknown") == "upload"


def test_a_long_file_name_keeps_its_end() -> None:
    name = validation.file_name("\u202e" + "x" * 1000 + ".jpg", "image/jpeg")
    assert len(name) == validation.MAX_FILE_NAME_CHARS
    assert name.endswith("x.jpg")


def test_a_shown_name_has_no_control_separator_or_bidi_formatting() -> None:
    every_char = "".join(chr(c) for c in range(0x3000) if not 0xD800 <= c <= 0xDFFF)
    shown = validation.shown_safely(every_char)
    for char in shown:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Zl", "Zp"), f"U+{ord(char):04X}"
        assert unicodedata.bidirectional(char) not in ("LRE", "RLE", "LRO", "RLO", "PDF"), char
        assert unicodedata.bidirectional(char) not in ("LRI", "RLI", "FSI", "PDI"), char
    assert "\u200d" in shown, "joiners are kept: emoji and some scripts need them"


def test_uploaded_by_is_utf8_shown_safely_and_bounded() -> None:
    assert validation.clean_text(b"  ann\xc3\xa9\xe2\x80\xae \x00", "uploadedBy", 10) == "ann\u00e9"
    assert validation.clean_text(b" \x00 ", "uploadedBy", 10) is None
    with pytest.raises(HTTPException) as info:
        validation.clean_text(b"ann\xff", "uploadedBy", 10)
    assert info.value.status_code == 400
    assert "uploadedBy is not valid UTF-8 (byte 0xff at offset 3)" in str(info.value.detail)
