"""A multipart/form-data body, already in memory, parsed in one pass.

The upload and search routes read their body whole (`BodySizeLimit` bounds it), after the key
was checked, and parse it here, in the worker thread that handles the request. FastAPI's
`File()` and `Form()` parameters go through Starlette's streaming parser instead: an `await` and
a spooled-file write per 64 KiB chunk, then a form model built and validated field by field (on
the upload path about 1 ms of the event loop's time per image, and the event loop is what every
request shares); and FastAPI reads such a body before it checks the route's dependencies, so
before the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, status
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class FormError(ValueError):
    """The body is not a readable multipart/form-data form; the message says why."""


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Form:
    parts: dict[str, Part] = field(default_factory=dict)

    def file(self, name: str) -> Part | None:
        part = self.parts.get(name)
        return part if part is not None and part.filename is not None else None

    def text(self, name: str) -> str | None:
        """A text field's value (UTF-8, undecodable bytes replaced), or None if absent."""
        value = self.value(name)
        return None if value is None else value.decode("utf-8", errors="replace")

    def value(self, name: str) -> bytes | None:
        """A field's bytes as sent, for a reader that refuses what is not UTF-8 (stored text)."""
        part = self.parts.get(name)
        return None if part is None else part.data


def parse(content_type: str, body: bytes) -> Form:
    """Every part of a multipart/form-data `body`; the first of parts sharing a name wins."""
    mime, params = parse_options_header(content_type)
    if mime != b"multipart/form-data":
        raise FormError(
            f"the request body is {mime.decode(errors='replace') or 'not declared'}; "
            "send the image as multipart/form-data with a part named 'file'"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError("the multipart/form-data content type has no boundary")

    form = Form()
    headers: dict[bytes, bytes] = {}
    header_name: list[bytes] = []
    header_value: list[bytes] = []
    data: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(buf: bytes, start: int, end: int) -> None:
        header_name.append(buf[start:end])

    def on_header_value(buf: bytes, start: int, end: int) -> None:
        header_value.append(buf[start:end])

    def on_header_end() -> None:
        headers[b"".join(header_name).lower()] = b"".join(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(buf: bytes, start: int, end: int) -> None:
        data.append(buf[start:end])

    def on_part_end() -> None:
        disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise FormError("a form part has no Content-Disposition: form-data; name=...")
        key = name.decode("utf-8", errors="replace")
        filename = options.get(b"filename")
        ctype = headers.get(b"content-type")
        form.parts.setdefault(
            key,
            Part(
                name=key,
                filename=filename.decode("utf-8", errors="replace") if filename else None,
                content_type=ctype.decode("latin-1") if ctype else None,
                data=data[0] if len(data) == 1 else b"".join(data),
            ),
        )

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise FormError(f"the multipart/form-data body is malformed: {exc}") from exc
    return form


def read_image_form(content_type: str, body: bytes) -> tuple[Form, Part]:
    """The form of an upload or a search and its image part; 422 with the reason otherwise."""
    try:
        form = parse(content_type, body)
    except FormError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    file = form.file("file")
    if file is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "the form has no file part named 'file': send the image as "
            "multipart/form-data, field 'file'",
        )
    return form, file


def image_form_schema(title: str, description: str, fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a route that reads its multipart form itself (see the module's docstring)."""
    file = {"type": "string", "format": "binary", "description": description}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "title": title,
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": file, **fields},
                    }
                }
            },
        }
    }
