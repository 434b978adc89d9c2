"""A request body limit, enforced while the body arrives, before a route holds it whole.

A declared ``Content-Length`` over the limit is answered 413 at once; a body without one
(chunked) is counted as it arrives and refused as soon as it passes the limit. The limit is the
upload limit plus room for the form's other fields; routes check the file's own size exactly.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deeplens.settings import Settings
from search_api.validation import megabytes

FORM_SLACK = 256 * 1024
_DEFAULT_LIMIT: int = Settings.model_fields["max_upload_bytes"].default


def _detail(limit: int) -> str:
    return f"the request body is larger than the {megabytes(limit)} upload limit"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, slack: int = FORM_SLACK) -> None:
        self.app = app
        self.slack = slack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        upload_limit = _upload_limit(scope)
        limit = upload_limit + self.slack
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = JSONResponse(
                {"detail": _detail(upload_limit)},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _detail(upload_limit))
            return message

        await self.app(scope, limited, send)


def _upload_limit(scope: Scope) -> int:
    settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
    return int(getattr(settings, "max_upload_bytes", _DEFAULT_LIMIT))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
