"""Bounded database use: more subscribed sockets than PostgreSQL's ``max_connections``, writes during the fan-out.

Two daphne processes (settings.base, Redis, a fresh PostgreSQL database) each get their own ``application_name``
(libpq's ``PGAPPNAME``), so a sampler can count each process's connections in ``pg_stat_activity`` while REST and
GraphQL subscribers (together more than ``max_connections``) receive the events of concurrent HTTP writers, with
concurrent HTTP readers asking for more connections than the pool holds. Every write must answer 200, every
subscriber must get every event, and no process may ever hold more connections than ``DATABASE_POOL_MAX_SIZE``.

Each measured write changes a row of its own: an event's frame carries the row as re-read at delivery (FANOUT.md),
so two quick writes to one row could both show the second value; one write per row makes every frame exact.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets

from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import DaphneProcess, LiveDatabase
from tests.support import wait_until_async

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL"),
        reason="counts PostgreSQL connections per server process: needs DATABASE_URL (the PostgreSQL pass)",
    ),
]

POOL_MAX_SIZE = 4  # per process; below what the HTTP clients and the sockets would open without a bound
WRITERS = 4  # concurrent HTTP clients sending PATCH
READERS = 4  # concurrent HTTP clients sending GET, never paced: with the writers, more requests than the pool holds
WRITE_RATE = 20  # PATCHes per second, all writers together
WRITE_SECONDS = 8
SOCKETS_PER_KIND = 150  # at least; more when max_connections is larger (REST and GraphQL each)
WRITES = WRITE_RATE * WRITE_SECONDS
MEASURED = 1_000_000  # stock values of the measured writes start here (warm-up writes stay below)
SKU = "DB-BOUND-"  # the products this test creates: row 0 takes the warm-up writes, row 1 + n the measured write n
SUBSCRIBE = {
    "type": "subscribe",
    "collection": "products",
    "event": "update",
    "query": {"fields": ["id", "stock"], "filter": {"sku": {"_starts_with": SKU}}},
    "uid": "db",
}
GRAPHQL_SUBSCRIBE = "subscription { products_mutated(event: update) { key event data { id stock } } }"
BEGAN = time.monotonic()


def progress(what: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f}s] {what}", flush=True)  # shown with -s, and in the report of a failure


def http(server: DaphneProcess, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


class Sampler:
    """Counts each server process's connections (``pg_stat_activity`` by ``application_name``) until stopped."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.peak: Counter[str] = Counter()
        self.samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, application_name="likha-db-sampler") as conn:
            while not self.stopping.is_set():
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() GROUP BY application_name"
                ).fetchall()
                for name, count in rows:
                    self.peak[name] = max(self.peak[name], count)
                self.samples += 1
                self.stopping.wait(0.02)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


@dataclass
class Subscriber:
    kind: str
    rows: list[tuple[int, int]] = field(default_factory=list)  # (id, stock) of every row of every update frame


async def rest_subscriber(server: DaphneProcess, token: str, me: Subscriber, ready: asyncio.Event) -> None:
    url = server.ws_url("/websockets", access_token=token)
    async with websockets.connect(url, proxy=None, open_timeout=120, ping_interval=None, max_queue=None) as ws:
        await ws.send(json.dumps(SUBSCRIBE))
        assert json.loads(await ws.recv()) == {"type": "subscription", "event": "init", "uid": "db"}
        ready.set()
        async for raw in ws:
            frame = json.loads(raw)
            if frame == {"type": "ping"}:
                await ws.send(json.dumps({"type": "pong"}))
                continue
            rows = frame.get("data")
            assert frame == {"type": "subscription", "event": "update", "data": rows, "uid": "db"}, frame
            assert rows and all(row.keys() == {"id", "stock"} for row in rows), frame
            me.rows.extend((row["id"], row["stock"]) for row in rows)


async def graphql_subscriber(server: DaphneProcess, token: str, me: Subscriber, ready: asyncio.Event) -> None:
    url = server.ws_url("/graphql")
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], proxy=None, open_timeout=120, ping_interval=None, max_queue=None
    ) as ws:  # type: ignore[list-item]  # websockets types subprotocols as a list of its Subprotocol NewType
        await ws.send(json.dumps({"type": "connection_init", "payload": {"access_token": token}}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": GRAPHQL_SUBSCRIBE}}))
        ready.set()  # strawberry acknowledges no subscription: the warm-up writes show it has joined the fan-out
        async for raw in ws:
            frame = json.loads(raw)
            if frame == {"type": "ping"}:
                await ws.send(json.dumps({"type": "pong"}))
                continue
            mutated = frame["payload"]["data"]["products_mutated"]
            key, stock = mutated["key"], mutated["data"]["stock"]
            event = {"key": key, "event": "update", "data": {"id": key, "stock": stock}}
            assert frame == {"id": "1", "type": "next", "payload": {"data": {"products_mutated": event}}}, frame
            me.rows.append((int(key), stock))


async def within(condition: Callable[[], bool], patience: float) -> bool:
    """Whether ``condition`` holds within ``patience`` seconds (as ``write_until_seen``: else write again)."""
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@dataclass
class Load:
    """Paced PATCHes from ``WRITERS`` threads and unpaced GETs from ``READERS`` threads, over both processes."""

    servers: tuple[DaphneProcess, DaphneProcess]
    token: str
    keys: list[int]
    statuses: Counter[int] = field(default_factory=Counter)
    read_statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    written: list[tuple[int, int]] = field(default_factory=list)
    slowest_write: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def patch(self, n: int, key: int, stock: int) -> None:
        started = time.monotonic()
        status, body = http(self.servers[n % 2], "PATCH", f"/items/products/{key}", {"stock": stock}, self.token)
        with self.lock:
            self.statuses[status] += 1
            self.slowest_write = max(self.slowest_write, time.monotonic() - started)
            if status == 200:
                self.written.append((key, stock))
            else:
                self.failures.append(f"PATCH {key} stock={stock}: {status} {str(body)[:300]}")

    def writer(self, first: int, count: int, start: float) -> None:
        for i in range(count):
            n = first + i * WRITERS
            time.sleep(max(0.0, start + n / WRITE_RATE - time.monotonic()))  # pacing the load, not synchronisation
            self.patch(n, self.keys[1 + n], MEASURED + n)

    def reader(self, n: int, stop: threading.Event) -> None:
        while not stop.is_set():
            status, body = http(self.servers[n % 2], "GET", "/items/products?limit=50", token=self.token)
            with self.lock:
                self.read_statuses[status] += 1
                if status != 200:
                    self.failures.append(f"GET: {status} {str(body)[:300]}")
            n += 1


def test_connections_stay_bounded_and_writes_succeed_with_more_sockets_than_max_connections(
    start_server: StartServer, live_db: LiveDatabase
) -> None:
    import psycopg

    database_url = live_db.env["DATABASE_URL"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        assert row is not None
        max_connections = int(row[0])
    per_kind = max(SOCKETS_PER_KIND, max_connections // 2 + 25)  # together more than max_connections
    names = ("likha-db-a", "likha-db-b")
    sampler = Sampler(database_url).__enter__()  # from before the servers start: their logins and setup count too
    servers = (
        start_server(PGAPPNAME=names[0], DATABASE_POOL_MAX_SIZE=str(POOL_MAX_SIZE)),
        start_server(PGAPPNAME=names[1], DATABASE_POOL_MAX_SIZE=str(POOL_MAX_SIZE)),
    )
    admin = servers[0].login(*ADMIN)["access_token"]
    editor = servers[1].login(*EDITOR)["access_token"]
    products = [{"name": "Bound", "sku": f"{SKU}{n}", "stock": 0} for n in range(1 + WRITES)]
    status, created = http(servers[0], "POST", "/items/products?fields=id", products, admin)
    assert status == 200, created
    keys = [row["id"] for row in created["data"]]
    load = Load(servers, admin, keys)
    subscribers = [Subscriber("rest") for _ in range(per_kind)] + [Subscriber("graphql") for _ in range(per_kind)]
    progress(f"servers up, max_connections={max_connections}")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=WRITERS + READERS + 1)
        readies = [asyncio.Event() for _ in subscribers]
        tasks = []
        for n, (me, ready) in enumerate(zip(subscribers, readies, strict=True)):
            run = rest_subscriber if me.kind == "rest" else graphql_subscriber
            tasks.append(asyncio.create_task(run(servers[n % 2], editor, me, ready)))
            if n % 50 == 49:  # connect in waves, as clients with backoff do, not 300 handshakes at once
                await asyncio.gather(*(ready.wait() for ready in readies[: n + 1]))

        def failed() -> list[BaseException]:
            return [task.exception() for task in tasks if task.done() and task.exception() is not None]  # type: ignore[misc]

        await wait_until_async(lambda: failed() or all(r.is_set() for r in readies), 180, "subscribers not ready")
        assert not failed(), failed()[0]
        progress(f"{len(subscribers)} subscribed")
        # Warm-up: write until every subscriber (the GraphQL ones have no acknowledgement) has heard an event.
        warm = 0
        while not all(me.rows for me in subscribers):
            warm += 1
            assert warm < 200, "subscribers still silent after 200 warm-up writes"
            await loop.run_in_executor(pool, load.patch, warm, keys[0], warm)
            await within(lambda: bool(failed()) or all(me.rows for me in subscribers), patience=0.5)
        assert not failed(), failed()[0]
        progress(f"warm after {warm} writes")
        stop_reading = threading.Event()
        readers = [loop.run_in_executor(pool, load.reader, n, stop_reading) for n in range(READERS)]
        start = time.monotonic()
        per_writer = WRITES // WRITERS
        await asyncio.gather(*(loop.run_in_executor(pool, load.writer, w, per_writer, start) for w in range(WRITERS)))
        stop_reading.set()
        await asyncio.gather(*readers)
        progress(f"writes done in {time.monotonic() - start:.1f}s: {load.statuses}, reads {load.read_statuses}")
        expected = {row for row in load.written if row[0] != keys[0]}

        def heard_all() -> bool:
            return all(expected <= set(me.rows) for me in subscribers)

        try:
            await wait_until_async(lambda: failed() or heard_all(), 180, "subscribers missed events")
        except AssertionError:
            missing = Counter((me.kind, len(expected - set(me.rows))) for me in subscribers)
            raise AssertionError(
                f"subscribers missed events: {{(kind, events missed): subscribers}} {missing}"
            ) from None
        assert not failed(), failed()[0]
        progress("every subscriber heard every write")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pool.shutdown()

    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout=600))
    finally:
        sampler.__exit__()
        progress(
            f"max_connections={max_connections} sockets={2 * per_kind} writes={load.statuses} "
            f"reads={load.read_statuses} slowest write={load.slowest_write:.2f}s "
            f"peak connections per process={dict(sampler.peak)} samples={sampler.samples}"
        )
    assert load.failures == []
    assert load.statuses == Counter({200: load.statuses.total()})
    measured = sorted(row for row in load.written if row[0] != keys[0])
    assert measured == [(keys[1 + n], MEASURED + n) for n in range(WRITES)]
    for me in subscribers:
        heard = sorted(row for row in me.rows if row[0] != keys[0])
        assert heard == measured, me.kind  # each write's row exactly once, with the value that write gave it
    assert sampler.samples > 50
    for name, server in zip(names, servers, strict=True):
        assert 1 <= sampler.peak[name] <= POOL_MAX_SIZE, (name, dict(sampler.peak), server.log()[-3000:])
        assert "too many clients" not in server.log()
