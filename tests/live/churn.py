"""A churn client for live tests: many sockets that connect, authenticate, subscribe and close, in waves.

Each connection does its socket's whole happy path and checks every reply exactly, so a churn that fails (a refused
login, a missing ``init``) fails the test instead of measuring something else. Used by tests/live/test_churn_live.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets

from tests.live.harness import DaphneProcess
from tests.support import wait_until

PROBE_PATH = str(Path(__file__).resolve().parent / "churn_probe")
OPEN_TIMEOUT = 60

SUBSCRIBE = {
    "type": "subscribe",
    "collection": "products",
    "event": "update",
    "item": 2,
    "query": {"fields": ["id", "stock"]},
    "uid": "s",
}
GRAPHQL_SUBSCRIBE = {
    "id": "1",
    "type": "subscribe",
    "payload": {"query": "subscription { products_mutated { key event data { id stock } } }"},
}


async def _recv(ws: Any) -> dict[str, Any]:
    """The next frame; the JSON sockets' heartbeat ``ping`` (a loaded server may take a period to answer) is
    answered and skipped."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=OPEN_TIMEOUT))
        if frame != {"type": "ping"}:
            return frame
        await ws.send(json.dumps({"type": "pong"}))


async def expect(ws: Any, expected: dict[str, Any]) -> None:
    frame = await _recv(ws)
    assert frame == expected, frame


async def rest_connection(url: str, token: str) -> None:
    """The REST socket: ``auth`` by access token, ``subscribe``, ``init``, close."""
    async with websockets.connect(url, proxy=None, open_timeout=OPEN_TIMEOUT, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "auth", "access_token": token, "uid": "a"}))
        await expect(ws, {"type": "auth", "status": "ok", "uid": "a"})
        await ws.send(json.dumps(SUBSCRIBE))
        await expect(ws, {"type": "subscription", "event": "init", "uid": "s"})


async def graphql_connection(url: str, token: str) -> None:
    """The GraphQL socket (graphql-transport-ws): ``connection_init`` with the token, a subscription, close.

    The subscription is running once a ``ping`` sent after it is answered: the server handles a socket's messages in
    order, and the subscription starts before the next message is read."""
    async with websockets.connect(
        url, proxy=None, open_timeout=OPEN_TIMEOUT, ping_interval=None, subprotocols=["graphql-transport-ws"]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"access_token": token}}))
        await expect(ws, {"type": "connection_ack"})
        await ws.send(json.dumps(GRAPHQL_SUBSCRIBE))
        await ws.send(json.dumps({"type": "ping"}))
        await expect(ws, {"type": "pong"})


async def logs_connection(url: str, token: str) -> None:
    """The logs socket (an admin): ``auth``, ``subscribe`` at warn, close."""
    async with websockets.connect(url, proxy=None, open_timeout=OPEN_TIMEOUT, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "auth", "access_token": token, "uid": "a"}))
        await expect(ws, {"type": "auth", "status": "ok", "uid": "a"})
        await ws.send(json.dumps({"type": "subscribe", "log_level": "warn", "uid": "l"}))
        await expect(ws, {"type": "logs", "event": "subscribe", "log_level": "warn", "uid": "l"})


Connection = Callable[[str, str], Awaitable[None]]


async def churn(jobs: list[tuple[Connection, str]], token: str, concurrency: int) -> None:
    """Run every ``(connection, url)`` job, at most ``concurrency`` at a time; the first failure fails the wave."""
    queue: asyncio.Queue[tuple[Connection, str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            connection, url = queue.get_nowait()
            await connection(url, token)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@dataclass
class Probe:
    """The server-side probe (tests/live/churn_probe/sitecustomize.py) of one server process."""

    directory: Path

    @classmethod
    def env(cls) -> tuple[Probe, dict[str, str]]:
        """A probe and the server environment that enables it."""
        directory = Path(tempfile.mkdtemp(prefix="likha-probe-"))
        path = os.pathsep.join(filter(None, [PROBE_PATH, os.environ.get("PYTHONPATH")]))
        return cls(directory), {"LIKHA_PROBE_DIR": str(directory), "PYTHONPATH": path}

    def read(self, server: DaphneProcess, timeout: float = 60) -> dict[str, Any]:
        """Ask the server for a report (SIGUSR1) and wait for it."""
        assert server.process is not None
        path = self.directory / "probe.json"
        path.unlink(missing_ok=True)
        server.process.send_signal(signal.SIGUSR1)
        wait_until(path.exists, timeout, f"no probe report within {timeout}s:\n{server.log()[-3000:]}", interval=0.05)
        report: dict[str, Any] = json.loads(path.read_text())
        assert "error" not in report, f"the probe failed: {report['error']}"
        return report

    def settled(self, server: DaphneProcess, timeout: float = 60) -> dict[str, Any]:
        """The first report after the server has released every connection: our sockets all uncounted and
        daphne's connection table empty (its checker reaps a closed connection within a second or two)."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.read(server)
            if report["daphne_connections"] == 0 and not any(report["open_connections"].values()):
                return report
            assert time.monotonic() < deadline, f"connections not released after {timeout}s: {report}"
            time.sleep(0.2)
