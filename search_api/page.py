"""The search page at ``/app/``: plain HTML, CSS and ES modules from ``search_api/static``.

It is served by the API itself (same origin, nothing from a CDN), so it works offline and needs
no CORS. The tenant key stays in the browser (sessionStorage) and goes out only in the
``X-API-Key`` header and the status socket's subprotocols, never in a URL. Every file of the page
is sent with a strict Content-Security-Policy: scripts and styles from the API alone, nothing
inline, images from the API or the page's own ``blob:`` URLs (thumbnails are fetched with the key
header, which an ``<img src>`` can't send), and no framing.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PREFIX = "/app"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",  # a module script must be sent as JavaScript
    "Referrer-Policy": "no-referrer",
    # Revalidated each time (the ETag makes it cheap): a new version of the API never runs
    # with an old page's modules.
    "Cache-Control": "no-cache",
}


class PageFiles(StaticFiles):
    """`StaticFiles` whose every file carries the page's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the page under ``/app/`` and send ``/`` there."""
    folder = files("search_api") / "static"
    app.mount(PREFIX, PageFiles(directory=str(folder), html=True), name="page")
    app.add_api_route("/", home, include_in_schema=False)


async def home() -> RedirectResponse:
    # Relative, so that it holds behind a proxy that mounts the API under a path.
    return RedirectResponse("app/", status_code=307)
