"""The servers under test: Likha as ``make run`` + ``make serve`` would run it (2 daphne processes on one Redis and
one database, PostgreSQL when DATABASE_URL says so), seeded with the demo data; an admin token for the writer."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from bench.perf.scenarios import Target
from tests.live.harness import DaphneProcess, LiveDatabase, find_or_start_redis, server_env

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
        )
    finally:
        for server in servers:
            server.stop()
        if database.drop:
            database.drop()
        redis.stop()
