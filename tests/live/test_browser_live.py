"""A real browser on another origin (Playwright driving Debian's chromium) against a real daphne on Redis.

The page (tests/live/browser/page.html and page.js, with the npm graphql-ws client's browser build) is served by a
static server on another port, so another origin: the allowed one logs in over HTTP (CORS preflight) and receives a
live update on /websockets and on /graphql, and subscribes on /websockets/logs; the same page on a third origin, not
in WEBSOCKETS_ALLOWED_ORIGINS, fails the login's CORS and is refused on all three sockets. ``make test`` installs
chromium at ``$CHROMIUM`` (the Makefile's target of that path; /usr/bin/chromium by default) and the npm packages
first; without chromium these tests fail, not skip.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import ROOT, DaphneProcess, free_port, launch_chromium
from tests.support import wait_until, write_until_seen

PAGE_FILES = {
    "/page.html": (ROOT / "tests" / "live" / "browser" / "page.html", "text/html; charset=utf-8"),
    "/page.js": (ROOT / "tests" / "live" / "browser" / "page.js", "text/javascript; charset=utf-8"),
    "/graphql-ws.js": (ROOT / "node_modules" / "graphql-ws" / "umd" / "graphql-ws.js", "text/javascript"),
}
SUBSCRIPTION = "subscription { products_mutated(event: update) { key event data { id stock } } }"
WAIT_MS = 15_000  # a bound for a failing test, not a pace


class PageHandler(BaseHTTPRequestHandler):
    """Serves the test page and its scripts; nothing else."""

    def do_GET(self) -> None:
        found = PAGE_FILES.get(self.path)
        if found is None:
            self.send_error(404)
            return
        path, content_type = found
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageSite:
    """The page, served on 127.0.0.1 at a port of its own: an origin of its own."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), PageHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        """The site's origin under ``host`` (``localhost`` is another origin than ``127.0.0.1``)."""
        return f"http://{host}:{self.server.server_address[1]}"

    @property
    def origin(self) -> str:
        return self.url()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright; a clear failure (never a skip) when it or the page's files are missing."""
    missing = [path for path, _ in PAGE_FILES.values() if not path.exists()]
    if missing:
        pytest.fail(f"missing page files {missing}: run `make node_modules/.stamp` (npm ci) in the project root.")
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[PageSite, PageSite]]:
    """The allowed origin and a third, disallowed one (same page, another port)."""
    allowed, disallowed = PageSite(), PageSite()
    yield allowed, disallowed
    allowed.stop()
    disallowed.stop()


@pytest.fixture(scope="module")
def server(start_server: StartServer, sites: tuple[PageSite, PageSite]) -> DaphneProcess:
    allowed, _ = sites
    return start_server(WEBSOCKETS_ALLOWED_ORIGINS=allowed.origin)


class Page:
    """One browser tab on ``site``, with the WebSocket handshake errors Chromium reports kept in ``socket_errors``."""

    def __init__(self, browser: Any, site: PageSite, host: str = "127.0.0.1") -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.socket_errors: dict[str, str] = {}
        self.console: list[str] = []
        self.page.on("websocket", self._watch)
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.goto(f"{site.url(host)}/page.html")
        self.page.wait_for_function("() => window.seen && window.graphqlWs", timeout=WAIT_MS)

    def _watch(self, socket: Any) -> None:
        path = re.sub(r"\?.*", "", socket.url.split("/", 3)[3])
        socket.on("socketerror", lambda error: self.socket_errors.setdefault("/" + path, error))

    def call(self, function: str, *args: Any) -> Any:
        return self.page.evaluate(f"(args) => window.{function}(...args)", list(args))

    def seen(self, name: str) -> Any:
        return self.page.evaluate(f"() => window.seen.{name}")

    def wait(self, condition: str, timeout: float = WAIT_MS) -> None:
        try:
            self.page.wait_for_function(f"() => {condition}", timeout=timeout)
        except Exception as error:
            state = json.dumps(self.page.evaluate("() => window.seen"), indent=1)
            raise AssertionError(f"the page never saw {condition}; window.seen = {state}") from error

    def saw_within(self, condition: str, seconds: float) -> bool | None:
        """``True`` when ``condition`` holds within ``seconds``, else ``None`` (for ``write_until_seen``)."""
        try:
            self.page.wait_for_function(f"() => {condition}", timeout=seconds * 1000)
        except Exception:
            return None
        return True

    def events_until(self, condition: Any, message: str) -> None:
        """Until ``condition()``, on what Playwright reports (its events are dispatched while it is called)."""
        wait_until(lambda: self.page.evaluate("() => true") and condition(), WAIT_MS / 1000, message)

    def close(self) -> None:
        self.context.close()


def http(server: DaphneProcess, method: str, path: str, body: Any, token: str) -> Any:
    import urllib.request

    request = urllib.request.Request(
        server.http + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def test_a_page_on_an_allowed_origin_logs_in_and_gets_live_updates_on_all_three_sockets(
    chromium: Any, sites: tuple[PageSite, PageSite], server: DaphneProcess
) -> None:
    allowed, _ = sites
    writer = server.login(*ADMIN)["access_token"]
    product = http(
        server,
        "POST",
        "/items/products",
        {"name": "Browser", "sku": f"WEB-{uuid.uuid4().hex[:8]}", "price": "9.90", "stock": 1},
        writer,
    )
    page = Page(chromium, allowed)
    try:
        login = page.call("login", server.http, *ADMIN)
        assert login["ok"] and login["status"] == 200, login
        token = login["token"]
        assert isinstance(token, str) and token.count(".") == 2

        # REST socket: auth, subscribe; its init means the subscription listens, so one write is enough.
        page.call("openRest", server.ws_url("/websockets"), token, product["id"])
        page.wait("window.seen.rest.frames.some(f => f.type === 'subscription' && f.event === 'init')")
        http(server, "PATCH", f"/items/products/{product['id']}", {"stock": 7}, writer)
        page.wait("window.seen.rest.frames.some(f => f.event === 'update')")
        rest = page.seen("rest")
        assert rest["frames"][:2] == [
            {"type": "auth", "status": "ok"},
            {"type": "subscription", "event": "init", "data": [{"id": product["id"], "stock": 1}], "uid": "p"},
        ]
        updates = [f for f in rest["frames"] if f.get("event") == "update"]
        assert updates == [
            {"type": "subscription", "event": "update", "data": [{"id": product["id"], "stock": 7}], "uid": "p"}
        ]

        # GraphQL socket with the npm graphql-ws client: nothing tells when the subscription listens, so the write
        # is repeated until the page has seen an event (tests.support.write_until_seen).
        page.call("openGraphql", server.ws_url("/graphql"), token, SUBSCRIPTION)
        page.wait("window.seen.graphql.connected")
        key = json.dumps(str(product["id"]))
        seen_update = f"window.seen.graphql.next.some(v => v.data?.products_mutated?.key === {key})"
        write_until_seen(
            lambda: http(server, "PATCH", f"/items/products/{product['id']}", {"stock": 8}, writer),
            lambda patience: page.saw_within(seen_update, patience),
        )
        values = page.seen("graphql")["next"]
        mine = [v for v in values if (v.get("data") or {}).get("products_mutated", {}).get("key") == str(product["id"])]
        assert mine[0] == {
            "data": {
                "products_mutated": {
                    "key": str(product["id"]),
                    "event": "update",
                    "data": {"id": str(product["id"]), "stock": 8},
                }
            }
        }
        assert page.seen("graphql")["errors"] == []

        # Logs socket (admins): auth and subscribe.
        page.call("openLogs", server.ws_url("/websockets/logs"), token)
        page.wait("window.seen.logs.frames.some(f => f.type === 'logs' && f.event === 'subscribe')")
        assert page.seen("logs")["frames"][:2] == [
            {"type": "auth", "status": "ok"},
            {"type": "logs", "event": "subscribe", "log_level": "info"},
        ]
        assert page.socket_errors == {}
        for name in ("rest", "logs"):
            assert page.seen(name)["closed"] is None, name
        assert page.seen("graphql")["closed"] == []
    finally:
        page.close()


def test_a_page_on_a_disallowed_origin_fails_cors_and_is_refused_on_all_three_sockets(
    chromium: Any, sites: tuple[PageSite, PageSite], server: DaphneProcess
) -> None:
    _, disallowed = sites
    token = server.login(*ADMIN)["access_token"]  # a valid token: only the origin can be the reason
    page = Page(chromium, disallowed)
    try:
        assert page.call("login", server.http, *ADMIN) == {"ok": False, "error": "TypeError: Failed to fetch"}
        assert any("blocked by CORS policy" in line for line in page.console), page.console

        page.call("openRest", server.ws_url("/websockets"), token, 1)
        page.call("openLogs", server.ws_url("/websockets/logs"), token)
        page.call("openGraphql", server.ws_url("/graphql"), token, SUBSCRIPTION)
        page.wait("window.seen.rest.closed && window.seen.logs.closed && window.seen.graphql.closed.length")
        for name in ("rest", "logs"):
            assert page.seen(name) == {
                "opened": False,
                "error": True,
                "closed": {"code": 1006, "clean": False},
                "frames": [],
            }, name
        graphql = page.seen("graphql")
        assert (graphql["connected"], graphql["closed"], graphql["next"]) == (False, [{"code": 1006}], [])
        page.events_until(lambda: len(page.socket_errors) == 3, f"handshake errors: {page.socket_errors}")
        refused = "Error during WebSocket handshake: Unexpected response code: 403"
        assert page.socket_errors == {path: refused for path in ("/websockets", "/websockets/logs", "/graphql")}
    finally:
        page.close()

    origin = repr(disallowed.origin)
    lines = [line for line in server.log().splitlines() if "refused (HTTP 403)" in line]
    for path in ("/websockets", "/websockets/logs", "/graphql"):
        assert any(
            line.endswith(
                f"WebSocket handshake to {path} refused (HTTP 403): origin {origin} is not allowed "
                "(WEBSOCKETS_ALLOWED_ORIGINS)"
            )
            for line in lines
        ), lines
    assert token not in server.log()


def test_by_default_a_page_on_another_port_of_an_allowed_host_connects_to_all_three_sockets(
    chromium: Any, sites: tuple[PageSite, PageSite], start_server: StartServer
) -> None:
    # WEBSOCKETS_ALLOWED_ORIGINS and CORS_ALLOWED_ORIGINS unset: the origins of ALLOWED_HOSTS (127.0.0.1, localhost,
    # [::1]) at any port. A page on http://localhost:P against the server at 127.0.0.1 (strawberry's same-origin
    # check refused it on /graphql).
    server = start_server()
    page = Page(chromium, sites[1], host="localhost")
    try:
        login = page.call("login", server.http, *ADMIN)
        assert login["ok"] and login["status"] == 200, login
        token = login["token"]
        page.call("openRest", server.ws_url("/websockets"), token, 1)
        page.call("openLogs", server.ws_url("/websockets/logs"), token)
        page.call("openGraphql", server.ws_url("/graphql"), token, SUBSCRIPTION)
        page.wait("window.seen.rest.frames.some(f => f.type === 'subscription' && f.event === 'init')")
        page.wait("window.seen.logs.frames.some(f => f.type === 'logs' && f.event === 'subscribe')")
        page.wait("window.seen.graphql.connected")
        assert page.socket_errors == {}
        assert page.seen("graphql")["errors"] == []
    finally:
        page.close()
