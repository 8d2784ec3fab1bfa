"""The load generator's workers (``bench/perf/loadgen.mjs``, Node processes of their own) and the writer.

Workers never share the servers' interpreter nor the coordinator's: the coordinator only starts them, asks them for
their status, tells them to stop and reads what they recorded (float64 pairs: marker, arrival time in ms).
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
LOADGEN = ROOT / "bench" / "perf" / "loadgen.mjs"


def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        raise RuntimeError("make bench needs Node.js (node) for its load generator: none on PATH")
    return binary


class Worker:
    """One loadgen process; ``lines`` are its JSON lines, read on a thread."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.out = Path(tempfile.mkstemp(prefix="likha-bench-", suffix=".f64")[1])
        self.config = {**config, "out": str(self.out)}
        self.process = subprocess.Popen(  # noqa: S603  # our own script, its config from this process
            [node(), str(LOADGEN), json.dumps(self.config)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._new = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._new:
                self.lines.append(json.loads(line))
                self._new.notify_all()
        with self._new:
            self.lines.append({"exited": self.process.wait()})
            self._new.notify_all()

    def wait_for(self, key: str, timeout: float, after: int = 0) -> dict[str, Any]:
        """The first line from index ``after`` that holds ``key`` (fails on the worker's exit or the timeout)."""
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                for line in self.lines[after:]:
                    if key in line:
                        return line
                    if "exited" in line:
                        stderr = self.process.stderr.read() if self.process.stderr else ""
                        raise RuntimeError(f"load generator exited ({line['exited']}) before {key!r}: {stderr}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"load generator gave no {key!r} within {timeout}s")
                self._new.wait(left)

    def command(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def status(self, timeout: float = 30) -> dict[str, Any]:
        count = len(self.lines)
        self.command("status")
        return self.wait_for("status", timeout, after=count)

    def stop(self, timeout: float = 120) -> dict[str, Any]:
        self.command("stop")
        return self.wait_for("done", timeout)

    def records(self) -> Iterator[tuple[float, float]]:
        values = array("d")
        values.frombytes(self.out.read_bytes())
        return zip(values[0::2], values[1::2], strict=True)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.out.unlink(missing_ok=True)


class Writer:
    """Open-loop writes: write ``n`` is sent at ``start + n / rate`` whatever the earlier ones' answers (a pool of
    threads, each with a keep-alive HTTP connection). Records when each marker's request was sent (ms since the
    epoch), and its status. With several servers, writes go to each in turn, as a load balancer in front of the
    server processes spreads them."""

    def __init__(self, base_urls: list[str], token: str, threads: int = 32) -> None:
        self.servers = [urlparse(url) for url in base_urls]
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="bench-writer")
        self.local = threading.local()
        self.sent: dict[int, float] = {}
        self.status: dict[int, int] = {}
        self.answered: dict[int, float] = {}  # when each write's answer arrived (ms since the epoch)

    def _connection(self, server: int) -> http.client.HTTPConnection:
        connections = getattr(self.local, "connections", None)
        if connections is None:
            connections = self.local.connections = {}
        connection = connections.get(server)
        if connection is None:
            url = self.servers[server]
            connection = connections[server] = http.client.HTTPConnection(
                url.hostname or "127.0.0.1", url.port or 80, timeout=60
            )
        return connection

    def _patch(self, key: int, marker: int, server: int = 0) -> None:
        body = json.dumps({"stock": marker})
        for attempt in range(2):  # a keep-alive connection the server closed meanwhile: once more on a new one
            connection = self._connection(server)
            try:
                self.sent[marker] = time.time() * 1000
                connection.request("PATCH", f"/items/products/{key}", body, self.headers)
                response = connection.getresponse()
                response.read()
                self.answered[marker] = time.time() * 1000
                self.status[marker] = response.status
                return
            except (http.client.HTTPException, OSError):
                connection.close()
                self.local.connections.pop(server, None)
                if attempt:
                    self.status[marker] = 0

    def run(self, key: int, markers: list[int], rate: float) -> float:
        """Send ``markers`` to product ``key`` at ``rate`` a second; returns the seconds the schedule took."""
        started = time.monotonic()
        futures: list[Future[None]] = []
        for n, marker in enumerate(markers):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the schedule itself: open loop, not a synchronisation
            futures.append(self.pool.submit(self._patch, key, marker, n % len(self.servers)))
        for future in futures:
            future.result()
        return time.monotonic() - started

    def close(self) -> None:
        self.pool.shutdown(wait=True)
