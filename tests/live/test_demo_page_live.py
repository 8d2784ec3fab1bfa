"""The demo page at ``/`` in a real browser (Playwright driving Debian's chromium) against real daphne processes on
Redis: live tables within a second of an HTTP write, the edit form over the socket, the public role, the admin's
log panel, reconnecting after a server restart, GraphQL events and the token refresh.

Without chromium these tests fail, never skip (``make test`` installs it at ``$CHROMIUM``). Each case leaves a
screenshot in tests/artifacts/ (git-ignored). ``UPDATE_DEMO_SCREENSHOT=1`` also rewrites docs/img/demo.png, the
README's picture of the editor's view (not on every run: the committed file would change with each one).
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import ROOT, DaphneProcess, launch_chromium
from tests.support import write_until_seen

# Debian's package (Playwright cannot download its own browser builds here), as in test_browser_live.py.
WAIT_MS = 15_000  # a bound for a failing test, not a pace
RESTART_WAIT_MS = 40_000  # a server start (Django checks) plus a backoff of up to 10 s
LIVE_BOUND_SECONDS = 1.0  # the promise: an HTTP change is on the page within a second
ARTIFACTS = ROOT / "tests" / "artifacts"
README_SCREENSHOT = ROOT / "docs" / "img" / "demo.png"
STOCKS = itertools.count(1000)  # a fresh value for every write: an unchanged value sends no event


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> DaphneProcess:
    """The demo's defaults: every socket in handshake mode."""
    return start_server()


@pytest.fixture(scope="module")
def admin_token(server: DaphneProcess) -> str:
    """The other client's credentials: it writes over HTTP while the page watches."""
    return str(server.login(*ADMIN)["access_token"])


def api(server: DaphneProcess, method: str, path: str, token: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


def create_product(server: DaphneProcess, token: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    body = {"name": f"Demo {tag}", "sku": f"DEMO-{tag}", "price": "9.90", "stock": next(STOCKS)}
    return dict(api(server, "POST", "/items/products", token, body))


def set_stock(server: DaphneProcess, token: str, product_id: int) -> int:
    stock = next(STOCKS)
    api(server, "PATCH", f"/items/products/{product_id}", token, {"stock": stock})
    return stock


def cell(product_id: int, field: str) -> str:
    return f'#products tbody tr[data-id="{product_id}"] td[data-field="{field}"]'


class DemoPage:
    """One browser tab on the server's ``/``; page errors and console lines kept for failure messages."""

    def __init__(self, browser: Any, server: DaphneProcess) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(f"{server.http}/")
        self.wait("() => window.demo && window.demo.info !== null")

    def state(self) -> str:
        """What the page shows about its sockets and panels (for failure messages)."""
        summary = self.page.evaluate(
            """() => ({
                user: window.demo && window.demo.user,
                sockets: window.demo && window.demo.sockets,
                panels: [...document.querySelectorAll('[data-state]')].map(e => `${e.id}=${e.dataset.state}`),
                edit: document.querySelector('#edit-result')?.textContent,
            })"""
        )
        return json.dumps({"page": summary, "errors": self.errors, "console": self.console[-20:]}, indent=1)

    def wait(self, expression: str, arg: Any = None, timeout: float = WAIT_MS) -> None:
        try:
            self.page.wait_for_function(expression, arg=arg, timeout=timeout)
        except Exception as error:
            raise AssertionError(f"the page never met {expression} {arg!r}; {self.state()}") from error

    def wait_state(self, selector: str, state: str, timeout: float = WAIT_MS) -> None:
        self.wait("([s, v]) => document.querySelector(s)?.dataset.state === v", [selector, state], timeout)

    def wait_text(self, selector: str, text: str, timeout: float = WAIT_MS) -> None:
        self.wait("([s, t]) => document.querySelector(s)?.textContent === t", [selector, text], timeout)

    def saw_within(self, expression: str, arg: Any, seconds: float) -> bool | None:
        """``True`` when the condition holds within ``seconds``, else ``None`` (for ``write_until_seen``)."""
        try:
            self.page.wait_for_function(expression, arg=arg, timeout=seconds * 1000)
        except Exception:
            return None
        return True

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).text_content())

    def count(self, selector: str) -> int:
        return int(self.page.locator(selector).count())

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def log_in(self, email: str, password: str) -> None:
        self.page.fill("#login-email", email)
        self.page.fill("#login-password", password)
        self.page.click("#login-submit")
        self.wait("(email) => window.demo.user === email", email)

    def wait_live(self) -> None:
        """The REST socket is connected and both tables hold their init rows (listening from then on)."""
        self.wait_state("#rest-state", "connected")
        self.wait_state("#products", "live")

    def show_row(self, server: DaphneProcess, token: str, product_id: int) -> None:
        """The product's row is on the page: an init shows the first rows up to the server's default limit, an
        update event adds any other row (other live tests' products may push ours past that limit)."""
        if not self.count(f'#products tbody tr[data-id="{product_id}"]'):
            set_stock(server, token, product_id)
        self.wait("(s) => document.querySelector(s) !== null", f'#products tbody tr[data-id="{product_id}"]')

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def pages(chromium: Any) -> Iterator[list[DemoPage]]:
    """Tabs a test opens (``pages.append``): closed afterwards, and none may have thrown a script error."""
    opened: list[DemoPage] = []
    yield opened
    errors = [error for page in opened for error in page.errors]
    for page in opened:
        page.close()
    assert errors == [], errors


def open_page(pages: list[DemoPage], browser: Any, server: DaphneProcess) -> DemoPage:
    page = DemoPage(browser, server)
    pages.append(page)
    return page


def editor_page(pages: list[DemoPage], browser: Any, server: DaphneProcess) -> DemoPage:
    """A page where the editor logged in and the products table is live."""
    page = open_page(pages, browser, server)
    page.log_in(*EDITOR)
    page.wait_live()
    return page


def test_the_editor_sees_an_http_change_within_a_second(
    chromium: Any, pages: list[DemoPage], server: DaphneProcess, admin_token: str
) -> None:
    product = create_product(server, admin_token)
    page = editor_page(pages, chromium, server)
    page.wait_state("#sales_orders", "live")
    assert page.count("#products tbody tr") > 0 and page.count("#sales_orders tbody tr") > 0
    assert page.count('#products thead th[data-field="stock"]') == 1  # the editor may read stock
    assert page.text("#rest-user") == EDITOR[0] and page.text("#rest-mode") == "handshake"
    page.show_row(server, admin_token, product["id"])

    # The subscription's init means it listens: one write is enough. The bound runs from the PATCH's answer to
    # the moment Playwright sees the cell changed (its polling included: the real latency is below it).
    stock = next(STOCKS)
    api(server, "PATCH", f"/items/products/{product['id']}", admin_token, {"stock": stock})
    answered = time.monotonic()
    page.wait_text(cell(product["id"], "stock"), str(stock))
    elapsed = time.monotonic() - answered
    assert elapsed < LIVE_BOUND_SECONDS, f"the change took {elapsed:.3f}s to show"

    # A non-admin never opens the logs socket.
    assert page.page.locator("#logs-panel").is_hidden()
    assert page.evaluate("window.demo.sockets.logs.opens") == 0
    assert page.text("#logs-state") == "admins only"
    page.screenshot("a-editor-live-update")


def test_the_editor_saves_a_product_through_the_edit_form(
    chromium: Any, pages: list[DemoPage], server: DaphneProcess, admin_token: str
) -> None:
    product = create_product(server, admin_token)
    page = editor_page(pages, chromium, server)
    page.show_row(server, admin_token, product["id"])

    page.page.click(cell(product["id"], "name"))
    assert page.page.input_value("#edit-id") == str(product["id"])
    name = f"Edited {uuid.uuid4().hex[:6]}"
    page.page.fill("#edit-name", name)
    page.page.fill("#edit-price", "12.34")
    page.page.fill("#edit-stock", "77")
    page.page.click("#edit-save")
    page.wait("() => document.querySelector('#edit-result').dataset.status === 'ok'")
    page.wait_text(cell(product["id"], "name"), name)
    page.wait_text(cell(product["id"], "stock"), "77")
    page.wait_text(cell(product["id"], "price"), "12.34")
    saved = api(server, "GET", f"/items/products/{product['id']}", admin_token)
    assert (saved["name"], saved["price"], saved["stock"]) == (name, "12.34", 77)
    page.screenshot("b-edit-form-saved")

    # The server's validation reaches the form: a negative stock is refused, the row keeps its value.
    page.page.fill("#edit-stock", "-5")
    page.page.click("#edit-save")
    page.wait("() => document.querySelector('#edit-result').dataset.status === 'error'")
    assert page.text("#edit-result").startswith("INVALID_PAYLOAD:"), page.text("#edit-result")
    assert page.text(cell(product["id"], "stock")) == "77"


def test_a_public_visitor_sees_products_without_stock_and_no_sales_orders(
    chromium: Any, pages: list[DemoPage], start_server: StartServer, server: DaphneProcess, admin_token: str
) -> None:
    public = start_server(WEBSOCKETS_REST_AUTH="public")
    page = open_page(pages, chromium, public)
    page.wait_live()
    page.wait_state("#sales_orders", "no-access")
    assert page.text("#rest-user") == "public" and page.text("#rest-mode") == "public"
    assert page.count("#products tbody tr") > 0
    assert page.count('#products td[data-field="stock"]') == 0
    assert page.count('#products th[data-field="stock"]') == 0
    assert page.count('#products td[data-field="price"]') > 0
    assert page.text("#sales_orders-note").startswith("No access")
    assert page.count("#sales_orders tbody tr") == 0
    # The GraphQL socket is still in handshake mode: the page says a login is needed, and opens nothing.
    page.wait_state("#graphql-state", "login-required")
    assert page.evaluate("window.demo.sockets.graphql.opens") == 0
    assert page.page.locator("#logs-panel").is_hidden()

    # The public role's rows are live too (price is among its fields).
    product = create_product(public, admin_token)
    page.show_row(public, admin_token, product["id"])
    api(public, "PATCH", f"/items/products/{product['id']}", admin_token, {"price": "3.21"})
    page.wait_text(cell(product["id"], "price"), "3.21")
    page.screenshot("c-public-visitor")

    # On the default server (handshake mode) a visitor without a login is told why nothing is live.
    default = open_page(pages, chromium, server)
    default.wait_state("#rest-state", "login-required")
    default.wait_state("#products", "login-required")
    assert "requires a login on the REST socket (handshake mode)" in default.text("#products-note")
    assert default.evaluate("window.demo.sockets.rest.opens") == 0
    default.screenshot("c-public-visitor-handshake-mode")


def test_the_admin_sees_server_log_lines(chromium: Any, pages: list[DemoPage], server: DaphneProcess) -> None:
    page = open_page(pages, chromium, server)
    page.log_in(*ADMIN)
    page.wait_state("#logs-state", "connected")
    page.wait_state("#log-lines", "live")
    assert page.page.locator("#logs-panel").is_visible()

    # Every HTTP request is logged (likha_realtime.logs.requests); nothing tells when the log subscription has
    # joined every process's stream, so the request is repeated until its line arrives.
    marker = f"/demo-log-{uuid.uuid4().hex[:10]}"

    def request() -> int:
        try:
            with urllib.request.urlopen(server.http + marker, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code  # 404: no such page, logged all the same

    seen = "(m) => [...document.querySelectorAll('#log-lines li')].some(li => li.textContent.includes(m))"
    write_until_seen(request, lambda patience: page.saw_within(seen, marker, patience))
    lines = page.page.locator("#log-lines li").all_text_contents()
    assert any(f"INFO GET {marker} 404" in line for line in lines), lines
    page.screenshot("d-admin-log-panel")


def test_the_page_reconnects_after_the_server_restarts(
    chromium: Any, pages: list[DemoPage], server: DaphneProcess, admin_token: str
) -> None:
    # A server of this test's own (the module's is shared), restarted on the same port: the page's URL stays.
    first = DaphneProcess(dict(server.env)).start()
    second: DaphneProcess | None = None
    try:
        product = create_product(first, admin_token)
        page = editor_page(pages, chromium, first)
        page.wait_state("#graphql-state", "connected")

        first.stop()
        page.wait_state("#rest-state", "reconnecting")
        assert page.text("#rest-state").startswith("reconnecting in ")
        page.wait_state("#products", "stale")
        page.screenshot("e-reconnecting")

        second = DaphneProcess(dict(server.env), port=first.port).start()
        page.wait_state("#rest-state", "connected", RESTART_WAIT_MS)
        page.wait_state("#products", "live")  # a fresh init after the resubscription
        page.wait_state("#graphql-state", "connected", RESTART_WAIT_MS)
        assert page.evaluate("window.demo.sockets.rest.opens") >= 2
        page.show_row(second, admin_token, product["id"])
        stock = set_stock(second, admin_token, product["id"])
        page.wait_text(cell(product["id"], "stock"), str(stock))
        page.screenshot("e-reconnected")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_the_graphql_panel_receives_products_mutated(
    chromium: Any, pages: list[DemoPage], server: DaphneProcess, admin_token: str
) -> None:
    product = create_product(server, admin_token)
    page = editor_page(pages, chromium, server)
    page.wait_state("#sales_orders", "live")
    page.wait_state("#graphql-state", "connected")
    assert "stock" in page.text("#graphql-query")

    # Nothing tells when a graphql-ws subscription listens: write until the page has an event of this product.
    item = f'#graphql-events li[data-key="{product["id"]}"]'
    write_until_seen(
        lambda: set_stock(server, admin_token, product["id"]),
        lambda patience: page.saw_within("(s) => document.querySelector(s) !== null", item, patience),
    )
    assert page.page.locator(item).first.get_attribute("data-event") == "update"
    assert "stock" in page.text(item)
    page.screenshot("f-graphql-events")
    if os.environ.get("UPDATE_DEMO_SCREENSHOT"):
        # The README's picture: the editor's view with live tables and GraphQL events.
        page.page.click(cell(product["id"], "name"))
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(README_SCREENSHOT), full_page=True)


def test_the_token_is_refreshed_before_it_expires_and_pings_are_answered(
    chromium: Any, pages: list[DemoPage], start_server: StartServer, admin_token: str
) -> None:
    # 6 s tokens: the page refreshes 20 % of the lifetime (1.2 s) before expiry, so twice within ~10 s. A ping
    # every second: a page that did not answer would be closed 4408 after a period of silence.
    short = start_server(ACCESS_TOKEN_TTL="6s", WEBSOCKETS_HEARTBEAT_PERIOD="1")
    page = editor_page(pages, chromium, short)
    page.wait("() => window.demo.refreshes >= 2", timeout=30_000)
    assert page.text("#token-status").startswith("token refreshed at ")

    # The REST socket took each new token in place and answered every ping: never closed, still the editor's
    # (stock is readable).
    assert page.evaluate("window.demo.sockets.rest.opens") == 1
    assert page.evaluate("window.demo.sockets.rest.closes") == []
    # (The writer's token comes from the module's server: same database and signing key, a 15-minute lifetime.)
    product = create_product(short, admin_token)
    page.show_row(short, admin_token, product["id"])
    stock = set_stock(short, admin_token, product["id"])
    page.wait_text(cell(product["id"], "stock"), str(stock))

    # The GraphQL socket closes 4403 when its token expires (PROTOCOL §8) and comes back with the fresh one.
    page.wait("() => window.demo.sockets.graphql.closes.some(c => c.code === 4403)", timeout=30_000)
    page.wait_state("#graphql-state", "connected")
    page.screenshot("g-token-refreshed")


@pytest.mark.parametrize("mode", ["public", "strict"])
def test_the_page_works_in_the_other_auth_modes_and_logs_out(
    chromium: Any, pages: list[DemoPage], start_server: StartServer, admin_token: str, mode: str
) -> None:
    # All three sockets in that mode (handshake, the default, is the module's server).
    other = start_server(**{f"WEBSOCKETS_{name}_AUTH": mode for name in ("REST", "GRAPHQL", "LOGS")})
    page = open_page(pages, chromium, other)
    if mode == "public":
        # No login needed: the public role's products, without stock, on the REST and the GraphQL socket.
        page.wait_live()
        page.wait_state("#sales_orders", "no-access")
        page.wait_state("#graphql-state", "connected")
        assert "stock" not in page.text("#graphql-query")
        assert page.count('#products th[data-field="stock"]') == 0
    else:
        # Strict: the token goes on the URL at connect, so without a login no socket is opened.
        page.wait_state("#rest-state", "login-required")
        page.wait_state("#graphql-state", "login-required")
        assert page.evaluate("window.demo.sockets.rest.opens + window.demo.sockets.graphql.opens") == 0

    page.log_in(*ADMIN)
    page.wait_live()
    page.wait_state("#sales_orders", "live")
    page.wait_state("#graphql-state", "connected")
    page.wait_state("#log-lines", "live")
    assert page.count('#products th[data-field="stock"]') == 1
    assert "stock" in page.text("#graphql-query")
    product = create_product(other, admin_token)
    page.show_row(other, admin_token, product["id"])
    stock = set_stock(other, admin_token, product["id"])
    page.wait_text(cell(product["id"], "stock"), str(stock))
    page.screenshot(f"h-{mode}-mode-admin")

    # Logging out closes the session's sockets on purpose (no reconnect as the revoked user) and starts over as
    # the public role.
    page.page.click("#logout")
    page.wait("() => window.demo.user === 'public'")
    assert page.page.locator("#logs-panel").is_hidden()
    assert page.text("#token-status") == "Logged out."
    if mode == "public":
        page.wait_live()
        page.wait_state("#sales_orders", "no-access")
        assert page.count('#products th[data-field="stock"]') == 0
    else:
        page.wait_state("#rest-state", "login-required")
        assert page.count("#products tbody tr") == 0
    assert page.text("#logs-state") == "admins only"
