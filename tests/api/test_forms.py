"""The upload form parser: multipart bodies as clients send them, and bodies it must refuse."""

from __future__ import annotations

import httpx
import pytest

from search_api import forms


def encoded(files: dict[str, tuple[str, bytes, str]], data: dict[str, str]) -> tuple[str, bytes]:
    """(content type, body) as an HTTP client encodes the form."""
    request = httpx.Request("POST", "http://test/", files=files, data=data)
    return request.headers["Content-Type"], request.read()


def test_file_and_text_fields_come_back_as_sent() -> None:
    image = bytes(range(256)) * 1000 + b"\r\n--not-a-boundary\r\n" + b"\xff\xd9"
    content_type, body = encoded(
        {"file": ("holiday.jpg", image, "image/jpeg")},
        {"uploadedBy": "ana", "metadata": '{"sku": "A-1"}', "tenantId": "acme"},
    )
    form = forms.parse(content_type, body)
    part = form.file("file")
    assert part is not None
    assert (part.filename, part.content_type, part.data) == ("holiday.jpg", "image/jpeg", image)
    assert form.text("uploadedBy") == "ana"
    assert form.text("metadata") == '{"sku": "A-1"}'
    assert form.text("tenantId") == "acme"
    assert form.text("absent") is None


def test_a_text_field_is_not_a_file() -> None:
    content_type, body = encoded({"other": ("a.jpg", b"x", "image/jpeg")}, {"file": "not a file"})
    form = forms.parse(content_type, body)
    assert form.file("file") is None
    assert form.text("file") == "not a file"


def test_the_first_of_repeated_fields_wins() -> None:
    content_type = "multipart/form-data; boundary=XyZ"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nfirst\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nsecond\r\n--XyZ--\r\n'
    )
    assert forms.parse(content_type, body).text("a") == "first"


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        ("application/json", "multipart/form-data"),
        ("", "multipart/form-data"),
        ("multipart/form-data", "boundary"),
    ],
)
def test_a_body_that_is_not_a_form_is_refused_with_the_reason(
    content_type: str, reason: str
) -> None:
    with pytest.raises(forms.FormError, match=reason):
        forms.parse(content_type, b'{"file": "x"}')


def test_a_malformed_body_is_refused() -> None:
    with pytest.raises(forms.FormError, match="malformed"):
        forms.parse("multipart/form-data; boundary=b", b"--b\r\nno headers end here\r\n\x00")


def test_a_part_without_a_name_is_refused() -> None:
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--b--\r\n"
    with pytest.raises(forms.FormError, match="name"):
        forms.parse("multipart/form-data; boundary=b", body)
