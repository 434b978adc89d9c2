"""The API's reference pages, /docs (Swagger UI) and /redoc (ReDoc), whole without the internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from Google): on a
machine without the internet they stay blank. These pages load the same assets from the API,
from the copies the `fastapi-offline` wheel ships, under `ASSETS`. Swagger UI's validator badge,
which would send the schema's address to a validator on the internet, is off.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
SWAGGER_UI = {"validatorUrl": None}
# The pages may load from the API alone: ReDoc's bundle, for one, shows a logo from its makers'
# CDN, which the browser then never asks for. The inline parts are the pages' own start-up
# script and the styles both apps set on their elements; ReDoc's search runs in a blob: worker.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets; `app` is made with ``docs_url=redoc_url=None``."""
    folder = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)


async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI,
    )
    page.headers["Content-Security-Policy"] = POLICY
    return page


async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = POLICY
    return page
