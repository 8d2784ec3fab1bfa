"""Slow readers on the real server (PROTOCOL §4, SEND_BUFFER_MAX_BYTES): clients that stop reading while their
sockets keep getting frames are closed 4429 and dropped; the server's memory stays bounded; a subscriber that reads
keeps getting its frames, as fast as without them.

The non-readers are raw sockets with a small receive buffer that never ``recv()`` after the handshake
(``tests.slow_client``). Their flood: large ``items`` reads they ask for, or the events of a subscription to a
thousand rows that the test updates in bulk (one re-read per write, shared by every subscriber of the same query).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import ROOT, DaphneProcess, stop_process
from tests.slow_client import Drainer, NonReadingClient
from tests.support import wait_until

LIMIT = 1024 * 1024  # SEND_BUFFER_MAX_BYTES of these servers: 4 of the flood's frames (the default is 4 MiB)
ROWS = 1000  # QUERY_LIMIT_MAX: one read or one bulk event carries them all (~250 KB of JSON)
PREFIX = "SLOW-"
BIG_FIELDS = ["id", "name", "sku", "price", "stock", "status"]
SLOW_LINE = "slow reader closed 4429"


def http(server: DaphneProcess, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{method} {path}: {err.code} {err.read()!r}") from err
    return json.loads(raw) if raw else None


def slow_lines(server: DaphneProcess) -> list[str]:
    return [line for line in server.log().splitlines() if SLOW_LINE in line]


def closed_count(server: DaphneProcess, admin: str) -> int:
    """The server's own count of slow-reader closes (``/server/info``, admins only)."""
    return int(http(server, "GET", "/server/info", token=admin)["data"]["events"]["slow_readers_closed"])


def rss_kib(server: DaphneProcess) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> DaphneProcess:
    return start_server(WEBSOCKETS_SEND_BUFFER_MAX_BYTES=str(LIMIT))


@pytest.fixture(scope="module")
def admin(server: DaphneProcess) -> str:
    return str(server.login(*ADMIN)["access_token"])


@pytest.fixture(scope="module")
def big_rows(server: DaphneProcess, admin: str) -> Iterator[list[int]]:
    """A thousand products of ~250 bytes of JSON each (removed afterwards: the live database is shared)."""
    keys: list[int] = []
    try:
        for start in range(0, ROWS, 250):
            batch = [
                {"name": f"slow reader {i} " + "n" * 180, "sku": f"{PREFIX}{i:04}", "stock": i}
                for i in range(start, start + 250)
            ]
            keys += [row["id"] for row in http(server, "POST", "/items/products", batch, admin)["data"]]
        yield keys
    finally:
        for start in range(0, len(keys), 250):
            http(server, "DELETE", "/items/products", keys[start : start + 250], admin)


def read_all(uid: int) -> dict[str, Any]:
    query = {"fields": BIG_FIELDS, "filter": {"sku": {"_starts_with": PREFIX}}, "limit": -1}
    return {"type": "items", "action": "read", "collection": "products", "query": query, "uid": uid}


def subscribed(server: DaphneProcess, credentials: tuple[str, str], **subscribe: Any) -> JsonSocket:
    ws = JsonSocket(server.ws_url(), max_size=None)
    # Generous bounds: a password login hashes (about 1 s on a busy 2-core machine), a subscribe reads the database.
    login = {"type": "auth", "email": credentials[0], "password": credentials[1]}
    assert ws.request(login, timeout=30)["status"] == "ok"
    init = ws.request({"type": "subscribe", **subscribe}, timeout=30)
    assert init["type"] == "subscription" and init["event"] == "init", init
    return ws


def probe_row(server: DaphneProcess, admin: str, sku: str) -> int:
    return int(http(server, "POST", "/items/products", {"name": "probe", "sku": sku, "stock": 0}, admin)["data"]["id"])


def test_a_client_that_stops_reading_its_items_reads_is_closed_while_a_subscriber_keeps_its_frames(
    server: DaphneProcess, admin: str, big_rows: list[int]
) -> None:
    key = probe_row(server, admin, "SLOWPROBE-1")
    closed_before, lines_before = closed_count(server, admin), len(slow_lines(server))
    query = {"fields": ["id", "stock"], "filter": {"sku": {"_eq": "SLOWPROBE-1"}}}
    with subscribed(server, EDITOR, collection="products", query=query, event="update", uid="p") as watcher:
        slow = NonReadingClient("127.0.0.1", server.port, f"/websockets?access_token={admin}")
        try:
            for uid in range(40):  # 40 x ~250 KB: beyond the kernel's buffers (~2.5 MB here) and the limit
                slow.send_text(json.dumps(read_all(uid)))
            for stock in (1, 2, 3):
                http(server, "PATCH", f"/items/products/{key}", {"stock": stock}, admin)
                assert watcher.recv(timeout=30) == {
                    "type": "subscription",
                    "event": "update",
                    "data": [{"id": key, "stock": stock}],
                    "uid": "p",
                }
            wait_until(slow.dropped, 60, "the server kept the non-reading client's connection")
        finally:
            slow.close()
        http(server, "PATCH", f"/items/products/{key}", {"stock": 4}, admin)
        assert watcher.recv(timeout=30)["data"] == [{"id": key, "stock": 4}]
    http(server, "DELETE", f"/items/products/{key}", token=admin)
    assert closed_count(server, admin) == closed_before + 1
    (line,) = slow_lines(server)[lines_before:]
    assert "(path /websockets): " in line and f"would exceed SEND_BUFFER_MAX_BYTES={LIMIT}" in line
    assert admin not in server.log(), "the token in the URL is never logged"


def test_a_graphql_client_that_stops_reading_its_query_results_is_closed(
    server: DaphneProcess, admin: str, big_rows: list[int]
) -> None:
    """The reported case on the GraphQL socket: unread results of queries with aliases (each alias all the rows)."""
    closed_before, lines_before = closed_count(server, admin), len(slow_lines(server))
    aliases = " ".join(
        f'a{i}: products(limit: -1, filter: {{sku: {{_starts_with: "{PREFIX}"}}}}) {{ id name sku }}' for i in range(5)
    )
    slow = NonReadingClient(
        "127.0.0.1", server.port, f"/graphql?access_token={admin}", subprotocol="graphql-transport-ws"
    )
    try:
        slow.send_text(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(slow.recv_text()) == {"type": "connection_ack"}
        for i in range(12):  # 12 results of ~1 MB: beyond the kernel's buffers and the limit
            slow.send_text(json.dumps({"id": f"q{i}", "type": "subscribe", "payload": {"query": f"{{ {aliases} }}"}}))
        wait_until(slow.dropped, 60, "the server kept the non-reading GraphQL client's connection")
    finally:
        slow.close()
    assert closed_count(server, admin) == closed_before + 1
    (line,) = slow_lines(server)[lines_before:]
    assert "(path /graphql): " in line


class RssSampler:
    """The server's VmRSS every 20 ms on a thread, for the peak."""

    def __init__(self, server: DaphneProcess) -> None:
        self.server, self.peak, self._stop = server, rss_kib(server), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.server))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class Publisher:
    """``tests.live.publisher`` on the server's database and Redis: one update event of the thousand rows per call
    (the rows are not written: every subscriber re-reads them), so the flood costs the server its re-reads only."""

    def __init__(self, server: DaphneProcess, keys: list[int]) -> None:
        self.line = f"products update {','.join(map(str, keys))}\n"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.live.publisher"],
            cwd=ROOT,
            env=server.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def publish(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(self.line)
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "ok\n"

    def close(self) -> None:
        stop_process(self.process)


def next_frame(ws: JsonSocket, timeout: float = 60) -> dict[str, Any]:
    """The next frame that is not the server's heartbeat ping (answered), within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    frame = ws.recv(timeout=timeout)
    while frame == {"type": "ping"}:
        ws.send({"type": "pong"})
        frame = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
    return frame


PROBES_PER_ROUND = 5


def flood_round(
    publisher: Publisher, server: DaphneProcess, admin: str, watcher: JsonSocket, key: int, n: int
) -> list[float]:
    """One event of the thousand rows (the flood; the watcher reads it too), then probes: the watcher's latency
    for a one-row update written over HTTP."""
    publisher.publish()
    frame = next_frame(watcher)
    assert frame["uid"] == "big" and len(frame["data"]) == ROWS, frame.get("uid")
    latencies = []
    for probe in range(PROBES_PER_ROUND):
        stock = n * 10 + probe
        started = time.perf_counter()
        http(server, "PATCH", f"/items/products/{key}", {"stock": stock}, admin)
        assert next_frame(watcher) == {
            "type": "subscription",
            "event": "update",
            "data": [{"id": key, "stock": stock}],
            "uid": "p",
        }
        latencies.append(time.perf_counter() - started)
    return latencies


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


NON_READERS = 100
READER_ROUNDS = 10


def connect_subscribed(server: DaphneProcess, admin: str, subscribe: dict[str, Any], **kwargs: Any) -> list[Any]:
    """``NON_READERS`` raw clients subscribed to the thousand rows; each reads its ``init`` (so its subscription
    has joined the fan-out) and nothing more."""
    clients = [
        NonReadingClient("127.0.0.1", server.port, f"/websockets?access_token={admin}", **kwargs)
        for _ in range(NON_READERS)
    ]
    for client in clients:
        client.send_text(json.dumps(subscribe))
    for client in clients:
        assert json.loads(client.recv_text()) == {"type": "subscription", "event": "init", "uid": "big"}
    return clients


@pytest.mark.reliability
@pytest.mark.timeout(600)
def test_a_hundred_clients_that_never_read_leave_memory_bounded_and_other_subscribers_latency_unchanged(
    server: DaphneProcess, admin: str, big_rows: list[int]
) -> None:
    """The same flood with a hundred clients that read it (the fan-out's own cost), then twice with a hundred that
    never read: the non-readers are closed, the server's memory stays under a ceiling derived from the limit and
    comes back to the same peak the second time, and a subscriber's latency stays close to the readers' case."""
    key = probe_row(server, admin, "SLOWPROBE-2")
    big = {"fields": BIG_FIELDS, "filter": {"sku": {"_starts_with": PREFIX}}}
    subscribe_big = {"type": "subscribe", "collection": "products", "event": "update", "query": big, "uid": "big"}
    round_no = iter(range(1, 10_000))
    publisher = Publisher(server, big_rows)
    try:
        with subscribed(server, EDITOR, **{k: v for k, v in subscribe_big.items() if k != "type"}) as watcher:
            probe = {"fields": ["id", "stock"], "filter": {"sku": {"_eq": "SLOWPROBE-2"}}}
            watcher.send({"type": "subscribe", "collection": "products", "event": "update", "query": probe, "uid": "p"})
            assert next_frame(watcher) == {"type": "subscription", "event": "init", "uid": "p"}
            closed_before = closed_count(server, admin)
            # The flood, read: a hundred clients that keep up (default receive buffers, drained on a thread).
            readers = connect_subscribed(server, admin, subscribe_big, receive_buffer=None)
            drainer = Drainer(readers)
            reading: list[float] = []
            try:
                for _ in range(READER_ROUNDS):
                    reading += flood_round(publisher, server, admin, watcher, key, next(round_no))
                assert not any(client.dropped() for client in readers)
            finally:
                drainer.stop()
                for client in readers:
                    client.close()
            assert closed_count(server, admin) == closed_before, "a client that reads is never closed as slow"
            assert drainer.received >= NON_READERS * READER_ROUNDS * ROWS * 200
            waves = []
            for wave in (1, 2):
                baseline_kib = rss_kib(server)
                sampler = RssSampler(server)
                slow = connect_subscribed(server, admin, subscribe_big)
                with_them: list[float] = []
                try:
                    deadline = time.monotonic() + 240
                    while not all(client.dropped() for client in slow):
                        assert time.monotonic() < deadline, f"{sum(not c.dropped() for c in slow)} still connected"
                        with_them += flood_round(publisher, server, admin, watcher, key, next(round_no))
                finally:
                    for client in slow:
                        client.close()
                peak_kib = sampler.stop()
                expected = closed_before + NON_READERS * wave
                wait_until(lambda: closed_count(server, admin) >= expected, 30)  # noqa: B023  # called right here
                waves.append((baseline_kib, peak_kib, rss_kib(server), with_them))
    finally:
        publisher.close()
    http(server, "DELETE", f"/items/products/{key}", token=admin)

    assert closed_count(server, admin) == closed_before + 2 * NON_READERS
    frame_kib = 300  # one event frame of the thousand rows, rounded up
    ceiling_kib = NON_READERS * (LIMIT // 1024 + frame_kib + 64) * 3 // 2 + 64 * 1024
    report = [
        f"wave {i + 1}: rss {b // 1024} MiB -> peak {p // 1024} MiB -> after {a // 1024} MiB; "
        f"latency p50 {statistics.median(w) * 1000:.0f} ms, p99 {p99(w) * 1000:.0f} ms over {len(w)} probes"
        for i, (b, p, a, w) in enumerate(waves)
    ]
    print(
        f"\nslow readers: with {NON_READERS} readers: latency p50 {statistics.median(reading) * 1000:.0f} ms, "
        f"p99 {p99(reading) * 1000:.0f} ms over {len(reading)} probes; " + "; ".join(report)
    )
    for baseline_kib, peak_kib, _, _ in waves:
        assert peak_kib - baseline_kib < ceiling_kib, report
    # Nothing is kept per wave: once its non-readers are gone the server is back where the first wave left it, and
    # the second wave takes no more memory than the first did (from where each started). Not the absolute peaks:
    # the first wave's freed memory stays in the process (glibc keeps freed heap), so the second starts higher, and a
    # peak depends on how many frames are in flight when the closes come (the peaks differed by up to 40 MiB between
    # runs of the same code while each wave's growth did not).
    (base_1, peak_1, after_1, _), (base_2, peak_2, after_2, _) = waves
    assert after_2 < after_1 + 32 * 1024, report
    assert peak_2 - base_2 < peak_1 - base_1 + 32 * 1024, report
    for _, _, _, with_them in waves:
        assert p99(with_them) < max(3 * p99(reading), p99(reading) + 1.0), report
