"""Strict JSON for client text: what `json.loads` takes but the stores refuse or change is
refused with the field's name and the reason."""

from __future__ import annotations

import pytest

from deeplens import jsontext

LIMIT = 16 * 1024


def refusal(text: str | bytes, max_depth: int = jsontext.MAX_DEPTH) -> str:
    with pytest.raises(jsontext.JSONTextError) as info:
        jsontext.loads(text, "metadata", LIMIT, max_depth)
    message = str(info.value)
    assert message.startswith("metadata "), "a refusal names the field"
    return message


@pytest.mark.parametrize(
    "text",
    [
        '{"sku": "A-1", "tags": ["x", "y"], "n": 2, "price": 9.5, "ok": true, "none": null}',
        '{"emoji": "\\ud83d\\ude00", "raw": "\U0001f600", "text": "[{ not brackets }]"}',
        '{"escaped": "\\\\u0000 is only text here", "quote": "\\"[[["}',
        '{"min": -9223372036854775808, "max": 9223372036854775807, "tiny": 1e-400}',
        "[" * 32 + "]" * 32,
    ],
)
def test_json_the_stores_keep_as_sent_is_parsed(text: str) -> None:
    assert jsontext.loads(text, "metadata", LIMIT) is not None
    assert jsontext.loads(text.encode("utf-8", "surrogatepass"), "metadata", LIMIT) is not None


def test_values_are_those_of_json_loads() -> None:
    text = '{"a": [1, 2.5, "x", {"b": null}], "c": "\\ud83d\\ude00"}'
    assert jsontext.loads(text, "metadata", LIMIT) == {
        "a": [1, 2.5, "x", {"b": None}],
        "c": "\U0001f600",
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": 1e400}', "the number 1e400, beyond what a double holds"),
        ('{"a": -1E+999}', "beyond what a double holds"),
        ('{"a": NaN}', "NaN, which is not JSON"),
        ('{"a": Infinity}', "Infinity, which is not JSON"),
        ('{"a": 9223372036854775808}', "outside 64 bits"),
        ('{"a": -' + "9" * 5_000 + "}", "outside 64 bits"),
        ('{"a": "\\ud800"}', "a lone surrogate (\\ud800)"),
        ('{"a": ["ok", "\\udc00x"]}', "a lone surrogate (\\udc00)"),
        ('{"\\ud800": 1}', "a lone surrogate"),
        ('{"a": "x\\u0000"}', "a NUL character (\\u0000)"),
        ('{"\\u0000": 1}', "a NUL character"),
        ('{"a": 1, "b": {"c": 2, "c": 3}}', "the key 'c' twice"),
        ("{oops", "not valid JSON: Expecting property name"),
        ("", "not valid JSON"),
    ],
)
def test_json_the_stores_would_refuse_or_change_is_refused(text: str, reason: str) -> None:
    assert reason in refusal(text)


@pytest.mark.parametrize("depth", [33, 1_000, 8_000])
def test_nesting_past_the_limit_is_refused_before_parsing(depth: int) -> None:
    assert "more than 32 levels deep" in refusal("[" * depth + "]" * depth)
    assert "more than 32 levels deep" in refusal('{"a": ' + "{" * depth + "}" * depth + "}")


def test_an_unterminated_deep_text_is_refused_without_recursing() -> None:
    assert "levels deep" in refusal("[" * 8_000)
    assert "levels deep" in refusal('["x\\"]' + "[" * 8_000)


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"a": "' + "[" * 100 + '", "b": "\\"' + "{" * 100 + '"}'
    assert jsontext.loads(text, "metadata", LIMIT) == {"a": "[" * 100, "b": '"' + "{" * 100}


def test_the_depth_limit_is_the_callers() -> None:
    assert "more than 2 levels deep" in refusal("[[[]]]", max_depth=2)


def test_size_is_counted_in_utf8_bytes() -> None:
    text = '{"a": "' + "é" * (LIMIT // 2) + '"}'
    assert len(text) < LIMIT
    assert f"bytes; the limit is {LIMIT:,} bytes" in refusal(text)
    assert "200,000 bytes" in refusal("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("data", "where"),
    [(b'{"a": "caf\xe9"}', "byte 0xe9 at offset 10"), (b'{"a": "\xed\xa0\x80"}', "byte 0xed")],
)
def test_bytes_that_are_not_utf8_are_refused(data: bytes, where: str) -> None:
    assert f"not valid UTF-8 ({where}" in refusal(data)
