"""JSON text from clients (an upload's metadata, a filter), parsed strictly.

`json.loads` accepts text that the stores behind the API refuse or silently change, so that a
request passing it could fail later, after something was written, or store something else:

- ``NaN``, ``Infinity`` and numbers beyond a double (``1e400`` parses as ``inf``): not JSON
  (RFC 8259), and neither PostgreSQL's jsonb nor Qdrant's payload takes them;
- whole numbers outside 64 bits, which Qdrant's payload can't hold;
- a lone surrogate (``"\\ud800"``) or a NUL (``"\\u0000"``) in a string or key: no UTF-8 encodes
  the one, jsonb refuses the other;
- nesting deeper than `MAX_DEPTH`: `json.loads` recurses until it raises `RecursionError`;
- a key given twice: `json.loads` keeps the last one without a word;
- bytes that are not UTF-8.

`loads` refuses each with a `JSONTextError` whose message names the field, says what is wrong
and where, so that the API can answer 400 with it before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

MAX_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)

_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
_BRACKET = re.compile(r"[\[\]{}]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JSONTextError(ValueError):
    """The text can't be taken; the message names the field and says why and how to fix it."""


def loads(text: str | bytes, what: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The value of `text` (the field `what`), or `JSONTextError` for anything listed above,
    or for text longer than `max_bytes` once encoded as UTF-8."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_bytes:
        raise JSONTextError(f"{what} is {len(raw):,} bytes; the limit is {max_bytes:,} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONTextError(
                f"{what} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                "send it as UTF-8 text"
            ) from exc
    _check_depth(text, what, max_depth)
    try:
        value = json.loads(
            text,
            parse_constant=_constant(what),
            parse_float=_float(what),
            parse_int=_int(what),
            object_pairs_hook=_object(what),
        )
    except json.JSONDecodeError as exc:
        raise JSONTextError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    _check_strings(value, what)
    return value


def _check_depth(text: str, what: str, max_depth: int) -> None:
    """Refuse nesting past `max_depth` before `json.loads` recurses into it: brackets are
    counted outside strings (escapes removed first, so that each string is a plain ``"..."``)."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", _ESCAPE.sub("", text))):
        depth += 1 if bracket in "[{" else -1
        if depth > max_depth:
            raise JSONTextError(
                f"{what} nests arrays and objects more than {max_depth} levels deep; "
                f"the limit is {max_depth}"
            )


def _check_strings(value: Any, what: str) -> None:
    """Refuse NUL and lone surrogates in any key or string (the depth is already bounded)."""
    if isinstance(value, str):
        if (found := _UNSTORABLE.search(value)) is not None:
            char = found.group()
            if char == "\x00":
                problem, fix = "a NUL character (\\u0000), which can't be stored", "remove it"
            else:
                problem = f"a lone surrogate (\\u{ord(char):04x}), which no UTF-8 text can hold"
                fix = "send the whole surrogate pair, or remove it"
            raise JSONTextError(f"{what} has {problem}, in the string {_excerpt(value)}; {fix}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, what)
            _check_strings(item, what)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, what)


def _excerpt(value: str) -> str:
    """The start of a string, quoted, with anything not printable ASCII escaped."""
    return ascii(value[:40]) + ("..." if len(value) > 40 else "")


def _cut(literal: str) -> str:
    return literal[:40] + ("..." if len(literal) > 40 else "")


def _constant(what: str) -> Any:
    def refuse(name: str) -> Any:
        raise JSONTextError(f"{what} has {name}, which is not JSON; send a finite number")

    return refuse


def _float(what: str) -> Any:
    def finite(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise JSONTextError(
                f"{what} has the number {_cut(literal)}, beyond what a double holds; "
                "send a finite number, or the value as a string"
            )
        return value

    return finite


def _int(what: str) -> Any:
    def bounded(literal: str) -> int:
        # Past 20 characters a literal is out of range whatever it says (and int() is spared it).
        if len(literal) > 20 or not INT64[0] <= int(literal) <= INT64[1]:
            raise JSONTextError(
                f"{what} has the whole number {_cut(literal)}, outside 64 bits; "
                "send the value as a string"
            )
        return int(literal)

    return bounded


def _object(what: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(pairs)
        if len(value) < len(pairs):
            twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
            raise JSONTextError(f"{what} has the key {_excerpt(twice)} twice; give each key once")
        return value

    return unique
