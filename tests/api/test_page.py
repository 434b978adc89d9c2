"""The search page (`search_api.page`): it and each of its files come with the strict CSP, it
loads nothing from another host and nothing inline, and its modules are JavaScript that parses."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.page import POLICY

STATIC = Path(str(files("search_api") / "static"))
REQUIRED = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "connect-src 'self' ws: wss:",
    "frame-ancestors 'none'",
)
URL = re.compile(r"\b(?:https?|wss?):/{2}[^\s\"'`)]*", re.IGNORECASE)


class Assets(HTMLParser):
    """What a page loads (scripts, styles), and anything inline (which the CSP would block)."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self._tag = tag
        if tag == "script" and named.get("src"):
            self.loads.append(str(named["src"]))
        if tag == "link" and named.get("rel") == "stylesheet":
            self.loads.append(str(named["href"]))
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [
            f"{tag} {name}=" for name, _ in attrs if name == "style" or name[:2] == "on"
        ]

    def handle_data(self, data: str) -> None:
        if self._tag == "script" and data.strip():
            self.inline.append("<script> with a body")


def page_assets(client: TestClient) -> Assets:
    page = client.get("/app/")
    assert page.status_code == 200
    parser = Assets()
    parser.feed(page.text)
    return parser


def test_the_root_sends_browsers_to_the_page(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "app/"
    assert client.get("/").url.path == "/app/"


def test_the_page_and_each_asset_carry_the_strict_policy(client: TestClient) -> None:
    assert all(part in POLICY for part in REQUIRED)
    assert "unsafe-inline" not in POLICY and "unsafe-eval" not in POLICY
    assets = page_assets(client)
    assert {"app.js", "page.css"} <= set(assets.loads)
    paths = ["/app/", *(f"/app/{name}" for name in sorted(p.name for p in STATIC.iterdir()))]
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == POLICY, path
        assert answer.headers["x-content-type-options"] == "nosniff", path


def test_nothing_is_inline_and_nothing_comes_from_another_host(client: TestClient) -> None:
    assets = page_assets(client)
    assert assets.inline == []
    for path in STATIC.iterdir():
        assert URL.findall(path.read_text(encoding="utf-8")) == [], path.name


def test_the_modules_are_served_as_javascript_and_import_only_each_other(
    client: TestClient,
) -> None:
    modules = sorted(p.name for p in STATIC.glob("*.js"))
    assert "app.js" in modules
    for name in modules:
        answer = client.get(f"/app/{name}")
        assert "javascript" in answer.headers["content-type"], name
        imported = re.findall(r"^import .* from \"\./([\w.]+)\";$", answer.text, re.MULTILINE)
        assert set(imported) <= set(modules), name
    assert "text/css" in client.get("/app/page.css").headers["content-type"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node parses the modules")
def test_the_modules_parse(tmp_path: Path) -> None:
    for path in STATIC.glob("*.js"):
        copy = tmp_path / f"{path.stem}.mjs"  # .mjs: node parses it as an ES module
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        checked = subprocess.run(
            ["node", "--check", str(copy)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, f"{path.name}: {checked.stderr}"


def test_a_missing_asset_is_a_404(client: TestClient) -> None:
    assert client.get("/app/nothing-here.js").status_code == 404
