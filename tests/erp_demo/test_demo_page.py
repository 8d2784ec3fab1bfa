"""The demo page at ``/``: HTML that loads its stylesheet, its script and the vendored graphql-ws, each served with
DEBUG off by ServeStatic (the middleware of settings.base, which settings.test keeps)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.test import AsyncClient

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "erp_demo" / "static" / "erp_demo"
VENDOR = STATIC / "vendor"
NPM_PACKAGE = ROOT / "node_modules" / "graphql-ws"


class Assets(HTMLParser):
    """The scripts and stylesheets a page references, and how many scripts are inline."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.scripts.append(attributes["src"] or "")
            else:
                self.inline_scripts += 1
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes.get("href") or "")


async def body_of(response: object) -> bytes:
    """A response's bytes, streamed (ServeStatic's async file responses) or not."""
    if getattr(response, "streaming", False):
        return b"".join([chunk async for chunk in response.streaming_content])  # type: ignore[attr-defined]
    return response.content  # type: ignore[attr-defined,no-any-return]


async def page_assets() -> Assets:
    response = await AsyncClient().get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assets = Assets()
    assets.feed(response.content.decode())
    return assets


def test_the_test_settings_serve_static_files_as_the_server_does() -> None:
    # The same middleware as `make run` (settings.base), with DEBUG off: what this module checks is what daphne does.
    assert "servestatic.middleware.ServeStaticMiddleware" in settings.MIDDLEWARE
    assert settings.DEBUG is False
    assert settings.SERVESTATIC_USE_FINDERS is True


async def test_the_page_references_its_script_stylesheet_and_the_vendored_graphql_ws() -> None:
    assets = await page_assets()
    assert assets.stylesheets == ["/static/erp_demo/demo.css"]
    # graphql-ws first: the page's script uses its global (both deferred, so they run in this order).
    assert assets.scripts == ["/static/erp_demo/vendor/graphql-ws.min.js", "/static/erp_demo/demo.js"]
    assert assets.inline_scripts == 0


JAVASCRIPT = {"text/javascript", "application/javascript"}


@pytest.mark.parametrize(
    ("url", "path", "content_types"),
    [
        ("/static/erp_demo/demo.js", STATIC / "demo.js", JAVASCRIPT),
        ("/static/erp_demo/demo.css", STATIC / "demo.css", {"text/css"}),
        ("/static/erp_demo/vendor/graphql-ws.min.js", VENDOR / "graphql-ws.min.js", JAVASCRIPT),
    ],
)
async def test_the_referenced_static_files_are_served_with_debug_off(
    url: str, path: Path, content_types: set[str]
) -> None:
    expected = path.read_bytes()  # noqa: ASYNC240  (a small file, read before the request)
    response = await AsyncClient().get(url)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in content_types
    assert await body_of(response) == expected


async def test_the_page_shows_the_demo_accounts() -> None:
    response = await AsyncClient().get("/")
    text = response.content.decode()
    for login in ("editor@example.com", "editor-password", "admin@example.com", "admin-password"):
        assert login in text


async def test_the_page_answers_get_and_head_only() -> None:
    client = AsyncClient()
    assert (await client.head("/")).status_code == 200
    assert (await client.post("/")).status_code == 405


def test_the_vendored_graphql_ws_is_the_pinned_package_s_browser_build() -> None:
    # The copy must follow package.json's pin (npm ci installs it): a bump of graphql-ws is a copy too.
    version = json.loads((NPM_PACKAGE / "package.json").read_text())["version"]
    readme = (VENDOR / "README.md").read_text()
    assert f"graphql-ws {version}" in readme and "browser build" in readme
    assert (VENDOR / "graphql-ws.min.js").read_bytes() == (NPM_PACKAGE / "umd" / "graphql-ws.min.js").read_bytes()
    assert (VENDOR / "LICENSE.md").read_bytes() == (NPM_PACKAGE / "LICENSE.md").read_bytes()
