"""The real npm ``graphql-ws`` client (tests/live/js/client.mjs, pinned in package.json) against live daphne processes.

Each test starts ``node tests/live/js/client.mjs`` for one scenario and reads the JSON lines it prints, one per event
the client observed (connecting, connection_params, connected, next, closed, should_retry, error, exit), while the
test writes over HTTP. ``make test`` installs the pinned packages first (``npm ci``, the ``node_modules/.stamp``
target).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import ROOT, DaphneProcess
from tests.support import write_until_seen

CLIENT = ROOT / "tests" / "live" / "js" / "client.mjs"
NODE = shutil.which("node")
PRODUCT_FIELDS = "id name sku price stock status"
UPDATES = f"subscription {{ products_mutated(event: update) {{ key event data {{ {PRODUCT_FIELDS} }} }} }}"
# The public role may not read stock: selecting it fails validation (PROTOCOL §8), so its subscriptions leave it out.
PUBLIC_FIELDS = PRODUCT_FIELDS.replace(" stock", "")
PUBLIC_UPDATES = UPDATES.replace(PRODUCT_FIELDS, PUBLIC_FIELDS)


@pytest.fixture(scope="module", autouse=True)
def pinned_npm_packages() -> None:
    """Node and the exact versions pinned in package.json, as ``npm ci`` installs them."""
    if NODE is None:
        pytest.fail("These tests need Node.js 20 or newer on PATH (with npm), to run the real graphql-ws client.")
    pins = json.loads((ROOT / "package.json").read_text())["dependencies"]
    for name, version in pins.items():
        installed = ROOT / "node_modules" / name / "package.json"
        found = json.loads(installed.read_text())["version"] if installed.exists() else None
        if found != version:
            pytest.fail(
                f"npm package {name} {version} is not installed (found {found}): run `make node_modules/.stamp` "
                "or `npm ci` in the project root."
            )


class NodeClient:
    """One run of client.mjs: its stdout lines, parsed, arrive in a queue; every line read is kept in ``events``."""

    def __init__(self, *args: str, timeout: float = 30) -> None:
        self.timeout = timeout
        self.process = subprocess.Popen(
            [str(NODE), str(CLIENT), *args, "--timeout", str(timeout)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._lines.put(json.loads(line))
            except json.JSONDecodeError:
                self._lines.put({"event": "unparsed", "line": line.rstrip("\n")})
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def describe(self) -> str:
        lines = "\n".join(json.dumps(event) for event in self.events)
        return f"client events so far:\n{lines}\nclient stderr:\n{''.join(self._stderr)}"

    def expect(self, event: str, timeout: float = 10) -> dict[str, Any]:
        """The next line whose ``event`` is ``event``; other lines are read past (and kept in ``events``)."""
        line = self.poll(event, timeout)
        if line is None:
            raise AssertionError(f"no {event!r} line within {timeout}s; {self.describe()}")
        return line

    def poll(self, event: str, timeout: float) -> dict[str, Any] | None:
        """``expect``, but ``None`` when no such line arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0))
            except queue.Empty:
                return None
            if line is None:
                self._lines.put(None)
                raise AssertionError(f"client exited before a {event!r} line; {self.describe()}")
            self.events.append(line)
            if line["event"] == event:
                return line

    def finish(self, timeout: float = 10) -> int:
        """Wait for the client to exit; reads its remaining lines into ``events``; returns its exit code."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"client still running after {timeout}s; {self.describe()}") from None
        while (line := self._lines.get(timeout=5)) is not None:
            self.events.append(line)
        self._lines.put(None)
        return code

    def sequence(self, *names: str) -> list[str]:
        """The ``event`` names read so far, keeping only ``names`` (all of them when none are given)."""
        return [e["event"] for e in self.events if not names or e["event"] in names]

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def graphql_client(
    server: DaphneProcess,
    *,
    query: str = UPDATES,
    auth: str = "none",
    credentials: tuple[str, str] | None = None,
    url: str | None = None,
    scenario: str = "subscribe",
    count: int = 1,
    timeout: float = 30,
    extra: tuple[str, ...] = (),
) -> NodeClient:
    args = ["--url", url or server.ws_url("/graphql"), "--http", server.http, "--auth", auth, "--scenario", scenario]
    if scenario != "connect":
        args += ["--query", query, "--count", str(count)]
    if credentials is not None:
        args += ["--email", credentials[0], "--password", credentials[1]]
    return NodeClient(*args, *extra, timeout=timeout)


def http(server: DaphneProcess, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{method} {path} answered {err.code}: {err.read()!r}") from err


def new_product(server: DaphneProcess, token: str) -> dict[str, Any]:
    sku = f"GQL-JS-{uuid.uuid4().hex[:8]}"
    body = {"name": "GraphQL Interop", "sku": sku, "price": "12.50", "stock": 3}
    return http(server, "POST", "/items/products", body, token)["data"]


def update_product(server: DaphneProcess, token: str, key: Any, **changes: Any) -> dict[str, Any]:
    return http(server, "PATCH", f"/items/products/{key}", changes, token)["data"]


def first_update_seen(client: NodeClient, write: Any, timeout: float = 15) -> tuple[dict[str, Any], list[Any]]:
    """Write until the client reports a ``next`` line; that line and every write's result, in order.

    The subscribe message follows connection_ack at once, but the server starts the subscription in a task of its
    own and tells no one when it listens: a write before that is, by design, not delivered. So the write is retried
    (``tests.support.write_until_seen``); the line seen may show the state of any of the writes.
    """
    results: list[Any] = []
    line = write_until_seen(lambda: results.append(write()), lambda wait: client.poll("next", wait), timeout)
    return line, results


def runs(names: list[str]) -> list[str]:
    """``names`` with each run of repeated names as one (retried writes may cause more than one event)."""
    return [name for index, name in enumerate(names) if index == 0 or names[index - 1] != name]


def updated(product: dict[str, Any], **data: Any) -> dict[str, Any]:
    """The ``next`` payload of ``products_mutated(event: update)`` for ``product`` as it now is."""
    fields = {name: product[name] for name in PRODUCT_FIELDS.split()}
    fields["id"] = str(product["id"])
    fields.update(data)
    return {"data": {"products_mutated": {"key": str(product["id"]), "event": "update", "data": fields}}}


@pytest.mark.parametrize("auth", ["access_token", "password", "refresh_token"])
def test_a_handshake_subscription_receives_a_product_update_made_over_http(
    start_server: StartServer, auth: str
) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="handshake")
    token = server.login(*ADMIN)["access_token"]
    product = new_product(server, token)
    with graphql_client(server, auth=auth, credentials=EDITOR) as client:
        assert client.expect("connected")["retry"] is False
        line, writes = first_update_seen(
            client, lambda: update_product(server, token, product["id"], stock=7, price="13.75")
        )
        changed = writes[-1]  # every write sets the same values
        assert (changed["stock"], changed["price"]) == (7, "13.75")
        assert line["payload"] == updated(changed)
        assert client.finish() == 0
        keys = {"access_token": ["access_token"], "password": ["email", "password"]}.get(auth, ["refresh_token"])
        assert [e for e in client.events if e["event"] == "connection_params"] == [
            {"event": "connection_params", "call": 1, "keys": keys}
        ]
        assert client.sequence() == ["connecting", "connection_params", "connected", "next", "exit"]


def test_a_subscription_carries_the_updated_timestamp_of_the_http_write(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="handshake")
    token = server.login(*ADMIN)["access_token"]
    product = new_product(server, token)
    query = "subscription { products_mutated(event: update) { key data { id updated } } }"
    with graphql_client(server, query=query, auth="access_token", credentials=ADMIN) as client:
        client.expect("connected")
        line, writes = first_update_seen(client, lambda: update_product(server, token, product["id"], stock=11))
        payload = line["payload"]["data"]["products_mutated"]
        assert payload["key"] == payload["data"]["id"] == str(product["id"])
        # GraphQL's DateTime keeps microseconds; the HTTP API (DjangoJSONEncoder) cuts them to milliseconds.
        instant = datetime.fromisoformat(payload["data"]["updated"])
        assert instant.tzinfo is not None
        # The row as delivered: written by the write that caused the event or, re-read later, by a retry.
        assert instant.replace(microsecond=instant.microsecond // 1000 * 1000) in [
            datetime.fromisoformat(changed["updated"]) for changed in writes
        ]


def test_a_wrong_password_in_handshake_mode_is_closed_with_4403_forbidden(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="handshake")
    with graphql_client(
        server, auth="password", credentials=(EDITOR[0], "wrong"), extra=("--retry-attempts", "0")
    ) as client:
        assert client.expect("closed") == {"event": "closed", "code": 4403, "reason": "Forbidden", "clean": True}
        assert client.expect("error") == {"event": "error", "code": 4403, "reason": "Forbidden"}
        assert client.finish() == 1
        assert client.sequence() == ["connecting", "connection_params", "closed", "error", "exit"]


def test_a_strict_subscription_authenticates_with_the_access_token_in_the_url(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="strict")
    admin = server.login(*ADMIN)["access_token"]
    product = new_product(server, admin)
    url = server.ws_url("/graphql", access_token=server.login(*EDITOR)["access_token"])
    with graphql_client(server, url=url) as client:
        assert client.expect("connected")["retry"] is False
        line, writes = first_update_seen(client, lambda: update_product(server, admin, product["id"], status="draft"))
        changed = writes[-1]
        assert changed["status"] == "draft"
        assert line["payload"] == updated(changed)
        assert client.finish() == 0
        assert client.sequence() == ["connecting", "connection_params", "connected", "next", "exit"]
        assert client.events[1] == {"event": "connection_params", "call": 1, "keys": []}


def test_strict_mode_refuses_a_client_without_an_access_token_before_the_handshake(
    start_server: StartServer,
) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="strict")
    with graphql_client(server) as client:
        assert client.expect("error") == {"event": "error", "message": "Unexpected server response: 403"}
        assert client.finish() == 1
        # A refused upgrade is a socket error, not a close event: graphql-ws does not retry it.
        assert client.sequence("connecting", "should_retry", "error") == ["connecting", "should_retry", "error"]
        assert client.sequence("connection_params", "connected") == []


def test_a_public_subscription_needs_no_credentials_and_selects_what_the_public_role_reads(
    start_server: StartServer,
) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="public")
    token = server.login(*ADMIN)["access_token"]
    product = new_product(server, token)
    with graphql_client(server, query=PUBLIC_UPDATES) as client:
        assert client.expect("connected")["retry"] is False
        line, writes = first_update_seen(
            client, lambda: update_product(server, token, product["id"], stock=42, name="Public Interop")
        )
        expected = updated(writes[-1])
        del expected["data"]["products_mutated"]["data"]["stock"]
        assert line["payload"] == expected
        assert client.finish() == 0
        assert client.events[1] == {"event": "connection_params", "call": 1, "keys": []}


def test_keep_alive_pings_from_the_client_are_answered_with_pongs(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="public")
    with graphql_client(server, query=PUBLIC_UPDATES, extra=("--keep-alive", "300", "--log-pings")) as client:
        client.expect("connected")
        assert client.expect("ping") == {"event": "ping", "received": False, "payload": None}
        assert client.expect("pong", timeout=5) == {"event": "pong", "received": True, "payload": None}
        # The next ping is only queued after a pong: a second round trip proves the cycle keeps going.
        assert client.expect("ping") == {"event": "ping", "received": False, "payload": None}
        assert client.expect("pong", timeout=5) == {"event": "pong", "received": True, "payload": None}
        assert client.sequence("closed") == []


def test_a_query_over_the_handshake_socket_returns_the_product(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH="handshake")
    product = new_product(server, server.login(*ADMIN)["access_token"])
    query = f'{{ products_by_id(id: "{product["id"]}") {{ {PRODUCT_FIELDS} }} }}'
    with graphql_client(server, query=query, scenario="query", auth="access_token", credentials=EDITOR) as client:
        assert client.expect("next")["payload"] == {
            "data": {"products_by_id": {**{k: product[k] for k in PRODUCT_FIELDS.split()}, "id": str(product["id"])}}
        }
        client.expect("complete")
        assert client.finish() == 0


@pytest.mark.parametrize("mode", ["handshake", "public", "strict"])
def test_an_expired_token_closes_4403_and_graphql_ws_reconnects_with_a_fresh_token(
    start_server: StartServer, mode: str
) -> None:
    # simplejwt writes exp in whole seconds, so a token lives TTL-1 to TTL seconds: 4 s leaves room for the
    # writes until the first event, the writer's logins and the delivery before the expiry, even on a loaded machine.
    server = start_server(WEBSOCKETS_GRAPHQL_AUTH=mode, ACCESS_TOKEN_TTL="4s")
    auth = "url" if mode == "strict" else "access_token"
    # The writer's tokens are as short-lived: it logs in for each write.
    product = new_product(server, server.login(*ADMIN)["access_token"])

    def write(stock: int) -> Any:
        return lambda: update_product(server, server.login(*ADMIN)["access_token"], product["id"], stock=stock)

    # The client exits at the first event of its second connection (retried writes may cause more on the first).
    extra = ("--from-connection", "2")
    with graphql_client(server, auth=auth, credentials=EDITOR, timeout=45, extra=extra) as client:
        assert client.expect("connected")["retry"] is False
        started = time.monotonic()
        line, first_writes = first_update_seen(client, write(5), timeout=2.5)  # well before the token's expiry
        assert line["payload"] == updated(first_writes[-1])

        assert client.expect("closed", timeout=8) == {
            "event": "closed",
            "code": 4403,
            "reason": "Forbidden",
            "clean": True,
        }
        assert time.monotonic() - started < 6
        assert client.expect("should_retry") == {
            "event": "should_retry",
            "code": 4403,
            "reason": "Forbidden",
            "retry": True,
        }
        # graphql-ws waits 1.3-4 s (its randomised backoff for the first retry), then reconnects.
        assert client.expect("connected", timeout=10)["retry"] is True
        line, writes = first_update_seen(client, write(6))
        assert line["payload"] == updated(writes[-1])
        assert client.finish() == 0

    reconnected = [index for index, e in enumerate(client.events) if e["event"] == "connected"][1]
    # Every event of the first connection (one, or more for retried writes) shows the first writes' state.
    assert [e["payload"] for e in client.events[:reconnected] if e["event"] == "next"] in (
        [updated(first_writes[-1])] * count for count in range(1, len(first_writes) + 1)
    )
    fresh_logins = "url" if mode == "strict" else "connection_params"
    assert [e["call"] for e in client.events if e["event"] == fresh_logins] == [1, 2]
    assert runs(client.sequence("connecting", "connected", "next", "closed", "should_retry", "exit")) == [
        "connecting",
        "connected",
        "next",
        "closed",
        "should_retry",
        "connecting",
        "connected",
        "next",
        "exit",
    ]


def test_the_client_program_is_valid_javascript() -> None:
    result = subprocess.run(
        [str(NODE), "--check", str(CLIENT)], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
