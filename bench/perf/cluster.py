"""The servers under test: Likha as ``make run`` + ``make serve`` would run it (2 daphne processes on one Redis and
one database, PostgreSQL when DATABASE_URL says so), seeded with the demo data; an admin token for the writer."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from bench.perf.scenarios import Target
from tests.live.harness import (
    ROOT,
    DaphneProcess,
    LiveDatabase,
    find_or_start_redis,
    free_port,
    server_env,
    stop_process,
    wait_for_port,
)

ADMIN = {"email": "admin@example.com", "password": "admin-password"}


def post(url: str, body: Any, token: str | None = None, method: str = "POST") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


@contextlib.contextmanager
def likha(processes: int = 2, extra_env: dict[str, str] | None = None) -> Iterator[Target]:
    redis = find_or_start_redis()
    database = LiveDatabase.create()
    servers: list[DaphneProcess] = []
    try:
        database.manage("migrate", "--noinput")
        database.manage("seed_demo")
        env = server_env(
            database.env,
            {
                "REDIS_URL": redis.url,
                "REDIS_PREFIX": f"bench{int(time.time() * 1000)}",
                "WEBSOCKETS_HEARTBEAT_ENABLED": "false",
                "LOG_LEVEL": "warning",
                # The load generator's workers open hundreds of sockets a second from one address and one user.
                "WEBSOCKETS_USER_CONN_LIMIT": "unlimited",
                "WEBSOCKETS_USER_MESSAGE_RATE_POINTS": "unlimited",
                **(extra_env or {}),
            },
        )
        servers = [DaphneProcess(env).start() for _ in range(processes)]
        token = post(servers[0].http + "/auth/login", ADMIN)["data"]["access_token"]
        product = {"sku": f"BENCH-{time.time_ns()}", "name": "bench", "stock": 0}
        key = post(servers[0].http + "/items/products", product, token)
        yield Target(
            rest_urls=[server.ws_url("/websockets", access_token=token) for server in servers],
            graphql_urls=[server.ws_url("/graphql") for server in servers],
            pids=[server.process.pid for server in servers if server.process is not None],
            http=servers[0].http,
            token=token,
            key=int(key["data"]["id"]),
            counters=[server.http for server in servers],
        )
    finally:
        for server in servers:
            server.stop()
        if database.drop:
            database.drop()
        redis.stop()


@contextlib.contextmanager
def _processes(commands: list[list[str]], ports: list[int], env: dict[str, str]) -> Iterator[list[int]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for command in commands:
            started.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
            )
        for process, port in zip(started, ports, strict=True):
            wait_for_port("127.0.0.1", port, 30, process)
        yield [process.pid for process in started]
    finally:
        for process in started:
            stop_process(process)


@contextlib.contextmanager
def _baseline(processes: int, command: Callable[[int, int], list[str]], http_on_own_port: bool) -> Iterator[Target]:
    """``processes`` baseline servers on one Redis: ``command(port, http_port)`` starts one; the writer writes to
    the first one's HTTP port (its WebSocket port unless ``http_on_own_port``)."""
    redis = find_or_start_redis()
    env = {**os.environ, "REDIS_URL": redis.url, "REDIS_PREFIX": f"baseline{time.time_ns()}"}
    ports = [free_port() for _ in range(processes)]
    http_ports = [free_port() for _ in range(processes)] if http_on_own_port else ports
    commands = [command(port, http_port) for port, http_port in zip(ports, http_ports, strict=True)]
    try:
        with _processes(commands, ports, env) as pids:
            urls = [f"ws://127.0.0.1:{port}/" for port in ports]
            yield Target(urls, [], pids, f"http://127.0.0.1:{http_ports[0]}", "", 1)
    finally:
        redis.stop()


def channels_baseline(processes: int = 2) -> contextlib.AbstractContextManager[Target]:
    """Baseline (a): bench/perf/baseline_channels.py on daphne."""
    app = "bench.perf.baseline_channels:application"
    return _baseline(
        processes, lambda port, _: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app], False
    )


def daphne_baseline(processes: int = 2) -> contextlib.AbstractContextManager[Target]:
    """Baseline (c): daphne with the barest ASGI application (bench/perf/baseline_daphne.py); memory only."""
    app = "bench.perf.baseline_daphne:application"
    return _baseline(
        processes, lambda port, _: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app], False
    )


def websockets_baseline(processes: int = 2) -> contextlib.AbstractContextManager[Target]:
    """Baseline (b): bench/perf/baseline_websockets.py."""
    module = "bench.perf.baseline_websockets"
    return _baseline(processes, lambda port, http: [sys.executable, "-m", module, str(port), str(http)], True)
