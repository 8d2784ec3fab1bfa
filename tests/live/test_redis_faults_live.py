"""Redis faults on real servers: a private redis-server under two daphne processes is killed, then restarted.

While it is down HTTP writes answer 200 quickly and every socket stays open (ping/pong); the fault is logged once,
not once per retry. Once it is back, without any restart of the servers: every subscription (REST on both
processes, GraphQL) gets one resync frame, new writes reach subscribers on both processes, and the logs socket
shows lines of the other process again. docs/RELIABILITY.md "Redis faults".
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR
from tests.live.harness import DaphneProcess, LiveDatabase, free_port, redis_ping, server_env, wait_for_port
from tests.support import wait_until, write_until_seen

GRAPHQL_SUBSCRIPTION = "subscription { products_mutated(event: update) { key event data { id stock } } }"
RESYNC_REST = {"type": "subscription", "event": "resync", "uid": "r"}
RESYNC_GRAPHQL = {
    "id": "g",
    "type": "next",
    "payload": {"data": {"products_mutated": {"key": None, "event": "resync", "data": None}}},
}
WAIT = 30.0  # generous: a loaded 2-core machine


class PrivateRedis:
    """A redis-server of this test's own on a free port, without persistence (a restart forgets everything)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port, 10, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        assert not redis_ping(self.url)


@pytest.fixture(scope="module")
def redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="module")
def pair(redis: PrivateRedis, live_db: LiveDatabase) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    prefix = f"likha-faults-{uuid.uuid4().hex[:8]}"
    # No server heartbeat: the test's own pings show that the sockets answer, and no ping frame interleaves.
    env = server_env(
        live_db.env, {"REDIS_URL": redis.url, "REDIS_PREFIX": prefix, "WEBSOCKETS_HEARTBEAT_ENABLED": "false"}
    )
    servers = (DaphneProcess(env).start(), DaphneProcess(env).start())
    yield servers
    for server in servers:
        server.stop()


def request(server: DaphneProcess, method: str, path: str, body: Any = None, token: str | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def fetch(server: DaphneProcess, path: str, token: str) -> Any:
    req = urllib.request.Request(server.http + path.replace('"', "%22"), headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=20) as response:
        return json.loads(response.read())


def rest_subscriber(server: DaphneProcess, key: int) -> JsonSocket:
    ws = JsonSocket(server.ws_url())
    assert ws.request({"type": "auth", "email": EDITOR[0], "password": EDITOR[1]})["status"] == "ok"
    init = ws.request(
        {"type": "subscribe", "collection": "products", "item": key, "event": "update", "uid": "r",
         "query": {"fields": ["id", "stock"]}}
    )  # fmt: skip
    assert init == {"type": "subscription", "event": "init", "uid": "r"}, init
    return ws


def graphql_subscriber(server: DaphneProcess, token: str) -> JsonSocket:
    ws = JsonSocket(server.ws_url("/graphql"), subprotocols=["graphql-transport-ws"])
    assert ws.request({"type": "connection_init", "payload": {"access_token": token}}) == {"type": "connection_ack"}
    ws.send({"id": "g", "type": "subscribe", "payload": {"query": GRAPHQL_SUBSCRIPTION}})
    return ws


def rest_update(key: int, stock: int) -> dict[str, Any]:
    return {"type": "subscription", "event": "update", "data": {"id": key, "stock": stock}, "uid": "r"}


def graphql_update(key: int, stock: int) -> dict[str, Any]:
    data = {"products_mutated": {"key": str(key), "event": "update", "data": {"id": str(key), "stock": stock}}}
    return {"id": "g", "type": "next", "payload": {"data": data}}


def graphql_event_update(frame: dict[str, Any]) -> bool:
    return bool(frame["type"] == "next" and frame["payload"]["data"]["products_mutated"]["event"] == "update")


def until(ws: JsonSocket, wanted: dict[str, Any], allowed: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Frames until ``wanted`` (returned with what came before); each earlier one must be ``allowed``."""
    deadline = time.monotonic() + WAIT
    seen: list[dict[str, Any]] = []
    while True:
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(frame)
        if frame == wanted:
            return seen
        assert allowed(frame), f"unexpected frame {frame!r} before {wanted!r}; all: {seen!r}"


def pong(ws: JsonSocket, frame: dict[str, Any], answer: dict[str, Any]) -> None:
    """The socket still answers: ``frame`` gets ``answer`` (the logs socket may stream lines before it)."""
    ws.send(frame)
    until(ws, answer, lambda other: other.get("type") == "logs")


def other_process_line(logs: JsonSocket, own_uid: str, write: Callable[[], object]) -> dict[str, Any]:
    """``write()`` (a request to the other process) until a line of another process than ``own_uid`` arrives."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        write()
        stop = time.monotonic() + 1.0
        while (frame := logs.recv_or_none(max(0.01, stop - time.monotonic()))) is not None:
            if frame.get("type") == "logs" and frame.get("uid") not in (None, own_uid):
                return frame
    raise AssertionError("no line of the other process arrived")


def test_redis_killed_and_restarted_under_two_servers(
    redis: PrivateRedis, pair: tuple[DaphneProcess, DaphneProcess]
) -> None:
    a, b = pair
    pair_named = (("a", a), ("b", b))
    admin = a.login(*ADMIN)["access_token"]
    editor = b.login(*EDITOR)["access_token"]
    key = fetch(a, '/items/products?filter={"sku":{"_eq":"SKU-0007"}}&fields=id', admin)["data"][0]["id"]
    patch = f"/items/products/{key}"

    with (
        rest_subscriber(a, key) as rest_a,
        rest_subscriber(b, key) as rest_b,
        graphql_subscriber(b, editor) as gql_b,
        JsonSocket(a.ws_url("/websockets/logs", access_token=admin)) as logs_a,
    ):
        assert logs_a.request({"type": "subscribe", "log_level": "info"})["event"] == "subscribe"
        # Before: events cross processes (written on A, heard on A and B; GraphQL retried until it has joined).
        stock = 100
        assert request(a, "PATCH", patch, {"stock": stock}, admin) == 200
        for ws in (rest_a, rest_b):
            assert ws.recv(timeout=WAIT) == rest_update(key, stock)

        def write_graphql() -> None:
            nonlocal stock
            stock += 1
            assert request(a, "PATCH", patch, {"stock": stock}, admin) == 200

        def graphql_seen(patience: float) -> dict[str, Any] | None:
            return gql_b.recv_or_none(patience)

        write_until_seen(write_graphql, graphql_seen)
        for ws in (rest_a, rest_b):  # the retries' frames: drain to the last one
            until(ws, rest_update(key, stock), lambda f: f["event"] == "update")
        until(gql_b, graphql_update(key, stock), lambda f: f["type"] == "next")
        a_uid = fetch(a, "/server/info", admin)["data"]["events"]["node"]  # the uid of A's log lines
        other_process_line(logs_a, a_uid, lambda: request(b, "GET", "/server/info"))
        a_log_before, b_log_before = len(a.log()), len(b.log())

        # Redis dies. Writes still answer 200, quickly; every socket still answers.
        redis.kill()
        durations = []
        for _ in range(6):
            stock += 1
            started = time.monotonic()
            assert request(a, "PATCH", patch, {"stock": stock}, admin) == 200
            durations.append(time.monotonic() - started)
        # One connection attempt to a closed port fails at once; waiting on a connect or read timeout (5 s, 15 s
        # in settings/base.py) would not fit. A loaded machine is allowed plenty.
        assert max(durations) < 4, durations
        pong(rest_a, {"type": "ping", "uid": 1}, {"type": "pong", "uid": 1})
        pong(rest_b, {"type": "ping", "uid": 2}, {"type": "pong", "uid": 2})
        pong(gql_b, {"type": "ping"}, {"type": "pong"})
        pong(logs_a, {"type": "ping", "uid": 3}, {"type": "pong", "uid": 3})
        # The fault is in both logs by now (each process's channel retries every second).
        for server, before in ((a, a_log_before), (b, b_log_before)):
            wait_for_text(server, before, "process channel: the channel layer failed (")
        wait_for_text(a, a_log_before, "publishing events: the channel layer failed (")

        # Down for a while: both processes retry every second, logging nothing more (checked at the end).
        def retried(server: DaphneProcess) -> dict[str, int]:
            events: dict[str, int] = fetch(server, "/server/info", admin)["data"]["events"]
            return events if events["receive_failures"] >= 3 else {}

        counters = {name: wait_until(lambda s=server: retried(s), WAIT, "no retries") for name, server in pair_named}
        assert counters["a"]["publish_failures"] >= 1 and counters["a"]["publish_deferred"] == 6, counters["a"]

        # Redis returns, empty. No server is restarted.
        redis.start()
        # Every subscription hears once that it may have missed events; frames of held-back writes may come first.
        for ws in (rest_a, rest_b):
            until(ws, RESYNC_REST, lambda f: f["event"] == "update")
        until(gql_b, RESYNC_GRAPHQL, graphql_event_update)

        # New writes reach both processes again (held-back ones, re-read now, may still arrive before them).
        stock += 1000
        assert request(a, "PATCH", patch, {"stock": stock}, admin) == 200
        for ws in (rest_a, rest_b):
            seen = until(ws, rest_update(key, stock), lambda f: f["event"] == "update")
            assert RESYNC_REST not in seen  # one resync per outage
        seen = until(
            gql_b, graphql_update(key, stock), lambda f: f["payload"]["data"]["products_mutated"]["event"] == "update"
        )
        # And the log stream carries the other process's lines again.
        other_process_line(logs_a, a_uid, lambda: request(b, "GET", "/server/info"))
        after = {name: fetch(server, "/server/info", admin)["data"]["events"] for name, server in pair_named}
        assert after["a"]["resyncs"] == 1 and after["b"]["resyncs"] == 2, after  # REST on A; REST and GraphQL on B
        assert after["a"]["publish_dropped"] == 0 and after["a"]["published"] >= counters["a"]["published"] + 7, after

    for server, before in ((a, a_log_before), (b, b_log_before)):
        text = server.log()[before:]
        assert text.count("process channel: the channel layer failed (") == 1, text
        assert "process channel: the channel layer answers again after " in text
        assert "Traceback" not in text, text


def wait_for_text(server: DaphneProcess, offset: int, text: str) -> None:
    wait_until(lambda: text in server.log()[offset:], WAIT, f"{text!r} not in the server log")
