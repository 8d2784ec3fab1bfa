"""Soak: N subscribed connections over P daphne processes (one Redis, one database), W writes/s for S seconds, a
fraction of the connections reconnecting every period; every subscriber must receive exactly the events it should.

``make soak`` runs the full size (2,000 connections, 2 processes, 50 writes/s, 10 minutes, 10 % reconnecting every
minute); tests/live/test_soak_live.py runs the same code for 60 s at a reduced size. Results: docs/RELIABILITY.md.

Exact counting. Each subscriber holds one item subscription (``item``) on one of the soak's products, each write
sets a product's ``stock`` to a new marker (a global sequence number), half through ``PATCH /items/products/<id>``
and half through the REST socket's ``items`` update, each kind spread evenly over the processes (as a load balancer
spreads clients). Writes to one product and the
(re)subscriptions to it take turns (a lock per product, in this client): a subscriber is registered while no write to
its product is under way, after every process has delivered that product's earlier writes (a monitor subscription
per process, which never reconnects, has received them all), and its ``init`` must show the product's last marker.
From then on, every write to its product must reach it exactly once until it closes, which it does (under the same
lock) only once it has received them all. So a session expects exactly the writes between its ``init`` and its
close: fewer frames is a loss, more is a duplicate; the stock values must also rise with the writes, each frame
showing at least its own write's marker (a frame is re-read when delivered, so it may show a later one) and the
last one the product's last marker. A reconnecting subscriber is a new session. Writes between a close and the
next ``init`` of that connection are not expected by it.

Also measured: VmRSS of each daphne process (``/proc/<pid>/status``) every sample period; growth after the warm-up
must stay under the limit. The daphne logs must hold no ERROR or CRITICAL line and no traceback. Exit status 1 on
any loss, duplicate, unexpected frame, failed write, ERROR line or RSS growth at or over the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import sys
import time
import urllib.request
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from tests.live.harness import DaphneProcess, LiveDatabase, RedisServer, find_or_start_redis, server_env

ADMIN = {"email": "admin@example.com", "password": "admin-password"}
EDITOR = {"email": "editor@example.com", "password": "editor-password"}
SKU = "SOAK-"
WAIT = 120.0  # seconds anything may take on a loaded machine before it counts as lost (a bound, not a pace)
BAD_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |^Traceback ", re.MULTILINE)


@dataclass
class Options:
    connections: int = 2000
    processes: int = 2
    rate: float = 50.0
    seconds: float = 600.0
    reconnect_fraction: float = 0.1
    reconnect_period: float = 60.0
    products: int = 100
    sample_period: float = 60.0
    warmup: float = 60.0
    rss_limit: float = 5.0
    connect_concurrency: int = 25
    seed: int = 11


@dataclass
class Session:
    """One subscribed connection's life, from its ``init`` to its close."""

    product: int
    server: int
    expected: list[int] = field(default_factory=list)  # markers of the writes it must receive, in order
    values: list[int] = field(default_factory=list)  # stock values of the frames it received, in order
    unexpected: list[Any] = field(default_factory=list)
    ws: Any = None
    reader: asyncio.Task[None] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def complete(self) -> bool:
        return len(self.values) >= len(self.expected)


class Monitor:
    """A subscription to every soak product on one process (never reconnects): counts per product."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = defaultdict(int)
        self.last: dict[int, int] = {}
        self.unexpected: list[Any] = []
        self.changed = asyncio.Event()


async def answer_pings(ws: Any, frame: dict[str, Any]) -> bool:
    """The server's heartbeat ``ping`` is answered (a silent client is closed 4408); True when it was one."""
    if frame.get("type") == "ping" and "uid" not in frame:
        await ws.send('{"type":"pong"}')
        return True
    return False


CONNECT_ATTEMPTS = 10
retries = [0]  # handshakes tried again (a real client retries with backoff too); reported


async def open_ws(url: str) -> Any:
    """A connection, retried with backoff when the handshake fails (daphne drops handshakes that its application
    does not accept within ``--websocket_connect_timeout``, 5 s, which a loaded 2-core machine can exceed)."""
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return await websockets.connect(
                url,
                open_timeout=WAIT,
                close_timeout=10,
                ping_interval=None,
                max_queue=None,
                compression=None,
                proxy=None,
            )
        except (OSError, EOFError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidMessage):
            if attempt == CONNECT_ATTEMPTS - 1:
                raise
            retries[0] += 1
            await asyncio.sleep(min(2**attempt, 8))
    raise AssertionError("unreachable")


class Soak:
    def __init__(self, options: Options, servers: list[DaphneProcess], admin: str, editor: str, keys: list[int]):
        self.o = options
        self.servers = servers
        self.admin = admin
        self.editor = editor
        self.keys = keys  # the soak products' keys
        self.rng = random.Random(options.seed)  # noqa: S311  # a reproducible choice, not a secret
        self.locks = {key: asyncio.Lock() for key in keys}
        self.last_marker = {key: 0 for key in keys}
        self.writes_done: dict[int, int] = defaultdict(int)
        self.active: dict[int, set[int]] = {key: set() for key in keys}  # product -> indexes of live sessions
        self.current: list[Session] = []  # each connection's live session
        self.closed: list[Session] = []  # sessions ended by a reconnect
        self.monitors = [Monitor() for _ in servers]
        self.markers = itertools.count(1)
        self.failed_writes: list[str] = []
        self.drain_timeouts = 0
        self.reconnects = 0
        self.writes = 0
        self.pool = ThreadPoolExecutor(32)
        self.writer_sockets: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in servers]
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tasks: list[asyncio.Task[Any]] = []

    # -- subscribers -----------------------------------------------------------------------------------------------

    async def subscribe(self, index: int, server: int) -> Session:
        """Open, subscribe and register connection ``index`` (its product's lock held by the caller)."""
        key = self.keys[index % len(self.keys)]
        session = Session(key, server)
        session.ws = await open_ws(self.servers[server].ws_url(access_token=self.editor))
        query = {"fields": ["id", "stock"]}
        await session.ws.send(json.dumps({"type": "subscribe", "collection": "products", "item": key, "query": query}))
        while True:
            frame = json.loads(await asyncio.wait_for(session.ws.recv(), WAIT))
            if not await answer_pings(session.ws, frame):
                break
        expected_init = {"type": "subscription", "event": "init", "data": {"id": key, "stock": self.last_marker[key]}}
        if frame != expected_init:
            session.unexpected.append({"init": frame, "expected": expected_init})
        self.active[key].add(index)
        session.reader = asyncio.create_task(self.read(session))
        return session

    async def read(self, session: Session) -> None:
        try:
            await self.read_frames(session)
        except websockets.ConnectionClosed as closed:  # the server ended a subscriber: a failure of the run
            session.unexpected.append({"closed by the server": repr(closed)})

    async def read_frames(self, session: Session) -> None:
        async for raw in session.ws:
            frame = json.loads(raw)
            if await answer_pings(session.ws, frame):
                continue
            data = frame.get("data")
            if (
                frame.get("type") == "subscription"
                and frame.get("event") == "update"
                and isinstance(data, dict)
                and data.get("id") == session.product
            ):
                session.values.append(data["stock"])
                session.arrived.set()
            else:
                session.unexpected.append(frame)

    async def close(self, session: Session) -> None:
        if session.reader is not None:
            session.reader.cancel()
        await session.ws.close()

    async def wait_for(self, condition: Any, event_of: Any) -> bool:
        """Until ``condition()``; False after ``WAIT`` seconds. Once one wait has failed (an event was lost: the
        run fails anyway), later ones wait a second only, so that the run still ends on time with its counts."""
        deadline = time.monotonic() + (1.0 if self.drain_timeouts else WAIT)
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            event = event_of()
            event.clear()
            if condition():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))
        return True

    async def reconnect(self, index: int) -> None:
        """Close connection ``index`` once it has all its writes, open it again (on a random process)."""
        old = self.current[index]
        key = old.product
        async with self.locks[key]:
            if not await self.wait_for(old.complete, lambda: old.arrived):
                self.drain_timeouts += 1
            target = self.rng.randrange(len(self.servers))
            monitor = self.monitors[target]
            if not await self.wait_for(lambda: monitor.counts[key] >= self.writes_done[key], lambda: monitor.changed):
                self.drain_timeouts += 1
            self.active[key].discard(index)
            await self.close(old)
            self.closed.append(old)
            self.current[index] = await self.subscribe(index, target)
            self.reconnects += 1

    # -- monitors and writers --------------------------------------------------------------------------------------

    async def start_monitor(self, server: int) -> None:
        monitor = self.monitors[server]
        ws = await open_ws(self.servers[server].ws_url(access_token=self.admin))
        message = {
            "type": "subscribe",
            "collection": "products",
            "event": "update",
            "query": {"fields": ["id", "stock"], "filter": {"sku": {"_starts_with": SKU}}},
            "uid": "m",
        }
        await ws.send(json.dumps(message))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            if not await answer_pings(ws, frame):
                break
        assert frame == {"type": "subscription", "event": "init", "uid": "m"}, frame

        async def read() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if await answer_pings(ws, frame):
                    continue
                if frame.get("type") == "subscription" and frame.get("event") == "update":
                    for row in frame["data"]:
                        monitor.counts[row["id"]] += 1
                        monitor.last[row["id"]] = row["stock"]
                    monitor.changed.set()
                else:
                    monitor.unexpected.append(frame)

        self.tasks.append(asyncio.create_task(read()))

    async def start_writer_socket(self, server: int) -> None:
        ws = await open_ws(self.servers[server].ws_url(access_token=self.admin))

        async def read() -> None:
            async for raw in ws:
                frame = json.loads(raw)
                if await answer_pings(ws, frame):
                    continue
                future = self.replies.pop(str(frame.get("uid")), None)
                if future is not None and not future.done():
                    future.set_result(frame)

        self.tasks.append(asyncio.create_task(read()))
        await self.writer_sockets[server].put(ws)

    def patch(self, server: int, key: int, marker: int) -> None:
        body = json.dumps({"stock": marker}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.admin}"}
        url = f"{self.servers[server].http}/items/products/{key}"
        request = urllib.request.Request(url, body, headers, method="PATCH")
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            reply = json.loads(response.read())
        if reply["data"]["stock"] != marker:
            raise RuntimeError(f"PATCH answered {reply}")

    async def write(self, n: int, key: int) -> None:
        server = (n // 2) % len(self.servers)  # odd n PATCH, even n the socket: both kinds on every process
        async with self.locks[key]:
            marker = next(self.markers)
            try:
                if n % 2:
                    await asyncio.get_running_loop().run_in_executor(self.pool, self.patch, server, key, marker)
                else:
                    await self.socket_write(server, key, marker)
            except Exception as exc:  # a write that may or may not have happened: the run cannot count exactly
                self.failed_writes.append(f"{key}={marker}: {exc!r}")
                return
            self.last_marker[key] = marker
            self.writes_done[key] += 1
            self.writes += 1
            for index in self.active[key]:
                self.current[index].expected.append(marker)

    async def socket_write(self, server: int, key: int, marker: int) -> None:
        ws = await self.writer_sockets[server].get()
        try:
            uid = f"w{marker}"
            future = asyncio.get_running_loop().create_future()
            self.replies[uid] = future
            message = {"type": "items", "action": "update", "collection": "products", "id": key, "uid": uid}
            await ws.send(json.dumps({**message, "data": {"stock": marker}, "query": {"fields": ["stock"]}}))
            reply = await asyncio.wait_for(future, WAIT)
        finally:
            self.writer_sockets[server].put_nowait(ws)
        if reply != {"type": "items", "data": {"stock": marker}, "uid": uid}:
            raise RuntimeError(f"items answered {reply}")

    # -- the run ---------------------------------------------------------------------------------------------------

    async def connect_all(self) -> float:
        started = time.monotonic()
        for server in range(len(self.servers)):
            await self.start_monitor(server)
            for _ in range(4):
                await self.start_writer_socket(server)
        gate = asyncio.Semaphore(self.o.connect_concurrency)
        self.current = [None] * self.o.connections  # type: ignore[list-item]

        async def one(index: int) -> None:
            async with gate:
                self.current[index] = await self.subscribe(index, index % len(self.servers))

        await asyncio.gather(*(one(index) for index in range(self.o.connections)))
        return time.monotonic() - started

    async def writer(self, started: float, deadline: float) -> None:
        in_flight = asyncio.Semaphore(100)
        pending: set[asyncio.Task[None]] = set()
        order = itertools.cycle(self.keys)
        for n in itertools.count():
            at = started + n / self.o.rate
            if at >= deadline or time.monotonic() >= deadline:  # behind the schedule: the run still ends on time
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key = next(order)
            for _ in range(len(self.keys)):  # a product being resubscribed waits; write another one meanwhile
                if not self.locks[key].locked():
                    break
                key = next(order)
            await in_flight.acquire()
            task = asyncio.create_task(self.write(n, key))
            task.add_done_callback(lambda _: in_flight.release())
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    async def reconnector(self, started: float, deadline: float) -> None:
        """Every period, ``fraction`` of the connections (chosen at random) reconnect, spread over the period."""
        count = max(1, round(self.o.connections * self.o.reconnect_fraction))
        gate = asyncio.Semaphore(20)
        pending: set[asyncio.Task[None]] = set()
        period_start = started
        while period_start + self.o.reconnect_period <= deadline + 1e-6:
            chosen = self.rng.sample(range(self.o.connections), count)
            for k, index in enumerate(chosen):
                delay = period_start + k * self.o.reconnect_period / count - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

                async def one(index: int = index) -> None:
                    async with gate:
                        await self.reconnect(index)

                task = asyncio.create_task(one())
                pending.add(task)
                task.add_done_callback(pending.discard)
            period_start += self.o.reconnect_period
        await asyncio.gather(*pending)

    async def sampler(self, deadline: float, samples: list[dict[str, Any]], started: float) -> None:
        while True:
            samples.append(sample(self.servers, time.monotonic() - started, self))
            if time.monotonic() + self.o.sample_period > deadline + 1:
                return
            await asyncio.sleep(self.o.sample_period)

    async def final_drain(self) -> bool:
        """After the last write: every live session and monitor has received everything it should."""

        def done() -> bool:
            sessions = all(session.complete() for session in self.current)
            monitors = all(m.counts[k] >= self.writes_done[k] for m in self.monitors for k in self.keys)
            return sessions and monitors

        deadline = time.monotonic() + (10.0 if self.drain_timeouts else WAIT)
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return done()

    def tally(self) -> dict[str, Any]:
        sessions = self.closed + self.current
        lost = duplicated = order_errors = 0
        for session in sessions:
            got, expected = len(session.values), len(session.expected)
            lost += max(0, expected - got)
            duplicated += max(0, got - expected)
            if got == expected and not values_follow(session.values, session.expected):
                order_errors += 1
        monitor_expected = sum(self.writes_done.values())
        return {
            "sessions": len(sessions),
            "reconnects": self.reconnects,
            "writes": self.writes,
            "events_expected": sum(len(s.expected) for s in sessions),
            "events_received": sum(len(s.values) for s in sessions),
            "lost": lost,
            "duplicated": duplicated,
            "value_order_errors": order_errors,
            "unexpected_frames": sum(len(s.unexpected) for s in sessions)
            + sum(len(m.unexpected) for m in self.monitors),
            "unexpected_examples": [u for s in sessions for u in s.unexpected][:5]
            + [u for m in self.monitors for u in m.unexpected][:5],
            "monitor_expected_each": monitor_expected,
            "monitor_received": [sum(m.counts.values()) for m in self.monitors],
            "failed_writes": len(self.failed_writes),
            "failed_write_examples": self.failed_writes[:5],
            "drain_timeouts": self.drain_timeouts,
            "connect_retries": retries[0],
        }


def values_follow(values: list[int], expected: list[int]) -> bool:
    """Frames re-read when delivered: each shows at least its own write's marker, values rise, the last is exact."""
    if not expected:
        return not values
    rising = all(a <= b for a, b in itertools.pairwise(values))
    return rising and all(v >= e for v, e in zip(values, expected, strict=True)) and values[-1] == expected[-1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(servers: list[DaphneProcess], at: float, soak: Soak) -> dict[str, Any]:
    return {
        "t": round(at, 1),
        "rss_mib": [round(rss_kib(s.process.pid) / 1024, 1) for s in servers if s.process],
        "writes": soak.writes,
        "load": round(os.getloadavg()[0], 2),
    }


def rss_growth(samples: list[dict[str, Any]], warmup: float) -> list[float]:
    """Per process: growth in % from the first sample at or after the warm-up to the last sample."""
    base = next(s for s in samples if s["t"] >= warmup - 1)
    last = samples[-1]
    return [round((b2 - b1) / b1 * 100, 2) for b1, b2 in zip(base["rss_mib"], last["rss_mib"], strict=True)]


def post(url: str, body: Any, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.loads(response.read() or b"null")


def start_servers(redis: RedisServer, database: LiveDatabase, processes: int) -> list[DaphneProcess]:
    env = server_env(
        database.env,
        {
            "REDIS_URL": redis.url,
            "REDIS_PREFIX": f"soak{os.getpid()}{int(time.time())}",
            "ACCESS_TOKEN_TTL": "3h",  # the run must not meet token expiry
            # Every subscriber is the one editor account: at 2,000 over 2 processes each holds exactly the default
            # per-user limit (1,000), and a reconnect may arrive before the server has seen its old socket close.
            "WEBSOCKETS_USER_CONN_LIMIT": "unlimited",
        },
    )
    return [DaphneProcess(env).start() for _ in range(processes)]


async def run(options: Options, redis: RedisServer, database: LiveDatabase) -> dict[str, Any]:
    servers = start_servers(redis, database, options.processes)
    try:
        admin = post(servers[0].http + "/auth/login", ADMIN)["data"]["access_token"]
        editor = post(servers[0].http + "/auth/login", EDITOR)["data"]["access_token"]
        rows = [{"name": f"Soak {i}", "sku": f"{SKU}{i:04d}", "stock": 0} for i in range(options.products)]
        keys = [row["id"] for row in post(servers[0].http + "/items/products", rows, admin)["data"]]
        soak = Soak(options, servers, admin, editor, keys)
        client_cpu = time.process_time()
        connect_seconds = await soak.connect_all()
        server_cpu = [cpu_seconds(s.process.pid) for s in servers if s.process]
        client_cpu = time.process_time()
        started = time.monotonic()
        deadline = started + options.seconds
        samples: list[dict[str, Any]] = []
        await asyncio.gather(
            soak.writer(started, deadline),
            soak.reconnector(started, deadline),
            soak.sampler(deadline, samples, started),
        )
        elapsed = time.monotonic() - started
        drained = await soak.final_drain()
        client_cpu = time.process_time() - client_cpu
        server_cpu = [cpu_seconds(s.process.pid) - c for s, c in zip(servers, server_cpu, strict=True) if s.process]
        result = soak.tally()
        await asyncio.gather(*(soak.close(session) for session in soak.current), return_exceptions=True)
        for task in soak.tasks:
            task.cancel()
        growth = rss_growth(samples, options.warmup)
        logs = [server.log() for server in servers]
        bad_lines = [line for log in logs for line in log.splitlines() if BAD_LINE.search(line + "\n")]
        alive = [server.process is not None and server.process.poll() is None for server in servers]
        result.update(
            {
                "options": vars(options),
                "connect_seconds": round(connect_seconds, 1),
                "run_seconds": round(elapsed, 1),
                "writes_per_s": round(soak.writes / elapsed, 1),
                "drained": drained,
                "rss_samples": samples,
                "rss_growth_pct": growth,
                "error_lines": len(bad_lines),
                "error_line_examples": bad_lines[:5],
                "warning_lines": sum(log.count(" WARNING ") for log in logs),
                "servers_alive": alive,
                "client_cpu_pct": round(client_cpu / elapsed * 100, 1),
                "server_cpu_pct": [round(c / elapsed * 100, 1) for c in server_cpu],
                "cores": os.cpu_count(),
            }
        )
        return result
    finally:
        for server in servers:
            server.stop()


def verdict(result: dict[str, Any], options: Options) -> list[str]:
    """Why the run failed (empty when it passed)."""
    problems = []
    for key in ("lost", "duplicated", "value_order_errors", "unexpected_frames", "failed_writes", "error_lines"):
        if result[key]:
            problems.append(f"{key}: {result[key]}")
    if not result["drained"]:
        problems.append("not every subscriber received its events within the bound after the last write")
    if result["monitor_received"] != [result["monitor_expected_each"]] * len(result["monitor_received"]):
        problems.append(f"monitors received {result['monitor_received']}, expected {result['monitor_expected_each']}")
    if not all(result["servers_alive"]):
        problems.append("a server process died")
    for n, growth in enumerate(result["rss_growth_pct"]):
        if growth >= options.rss_limit:
            problems.append(f"process {n}: RSS grew {growth} % after the warm-up (limit {options.rss_limit} %)")
    return problems


def report(result: dict[str, Any], problems: list[str]) -> str:
    o = result["options"]
    lines = [
        f"soak: {o['connections']} connections over {o['processes']} processes, {o['rate']} writes/s for "
        f"{o['seconds']} s, {o['reconnect_fraction'] * 100:.0f} % reconnecting every {o['reconnect_period']} s "
        f"({o['products']} products)",
        f"  connected in {result['connect_seconds']} s ({result['connect_retries']} handshakes retried); "
        f"ran {result['run_seconds']} s; "
        f"{result['writes']} writes ({result['writes_per_s']}/s); {result['reconnects']} reconnects; "
        f"{result['sessions']} sessions",
        f"  events expected {result['events_expected']}, received {result['events_received']}: "
        f"lost {result['lost']}, duplicated {result['duplicated']}, out of order {result['value_order_errors']}, "
        f"unexpected frames {result['unexpected_frames']}; monitors {result['monitor_received']} of "
        f"{result['monitor_expected_each']} each",
        f"  RSS MiB per process: {[s['rss_mib'] for s in result['rss_samples']]}",
        f"  RSS growth after warm-up ({o['warmup']} s): {result['rss_growth_pct']} %",
        f"  daphne logs: {result['error_lines']} ERROR/traceback lines, {result['warning_lines']} WARNING lines",
        f"  CPU: client {result['client_cpu_pct']} % of one core, servers {result['server_cpu_pct']} %, "
        f"{result['cores']} cores; load average {[s['load'] for s in result['rss_samples']]}",
        "  PASS" if not problems else "  FAIL: " + "; ".join(problems),
    ]
    return "\n".join(lines)


def soak(options: Options) -> tuple[dict[str, Any], list[str]]:
    redis = find_or_start_redis()
    database = LiveDatabase.create()
    try:
        database.manage("migrate", "--noinput")
        database.manage("seed_demo")
        result = asyncio.run(run(options, redis, database))
    finally:
        if database.drop:
            database.drop()
        redis.stop()
    return result, verdict(result, options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Options()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--json", help="also write the full result to this file")
    args = parser.parse_args()
    json_path = args.__dict__.pop("json")
    options = Options(**vars(args))
    result, problems = soak(options)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    print(report(result, problems))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
