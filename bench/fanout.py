"""Fan-out benchmark: N subscribers over P daphne processes on one Redis; a writer updates a product R times/s.

Measures what subscribers receive (every frame expected, none lost) and the latency from the write's commit to
each frame. Run with ``make bench`` (or ``python -m bench.fanout --help``); results go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from typing import Any

import websockets

from tests.live.harness import DaphneProcess, LiveDatabase, find_or_start_redis, server_env

ADMIN = {"email": "admin@example.com", "password": "admin-password"}


def post(url: str, body: Any, token: str | None = None, method: str = "POST") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


async def subscriber(
    url: str,
    token: str,
    ready: asyncio.Event,
    latencies: list[float],
    counts: list[int],
    index: int,
    opened: list[int],
    gate: asyncio.Semaphore,
) -> None:
    async with gate:  # connects in waves, as reconnecting clients with backoff do
        ws = await websockets.connect(
            f"{url}?access_token={token}", max_queue=None, proxy=None, open_timeout=60, ping_interval=None
        )
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "collection": "products",
                    "query": {"fields": ["id", "name"], "filter": {"id": {"_eq": 1}}},
                    "uid": "b",
                }
            )
        )
        await ws.recv()  # init
    async with ws:
        opened[0] += 1
        if opened[0] == len(counts):
            ready.set()
        async for raw in ws:
            received = time.time()
            frame = json.loads(raw)
            if frame.get("type") != "subscription" or frame.get("event") != "update":
                continue
            sent = float(frame["data"][0]["name"].split(":")[1])
            latencies.append(received - sent)
            counts[index] += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
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
                "REDIS_PREFIX": f"bench{int(time.time())}",
                "WEBSOCKETS_HEARTBEAT_ENABLED": "false",
                "LOG_LEVEL": "warning",
            },
        )
        servers = [DaphneProcess(env).start() for _ in range(args.processes)]
        token = post(servers[0].http + "/auth/login", ADMIN)["data"]["access_token"]
        ready = asyncio.Event()
        latencies: list[float] = []
        counts = [0] * args.subscribers
        opened = [0]
        connect_started = time.monotonic()
        gate = asyncio.Semaphore(args.connect_concurrency)
        tasks = [
            asyncio.create_task(
                subscriber(servers[i % len(servers)].ws_url(), token, ready, latencies, counts, i, opened, gate)
            )
            for i in range(args.subscribers)
        ]
        await asyncio.wait_for(ready.wait(), timeout=120)
        connect_seconds = time.monotonic() - connect_started
        writes = int(args.rate * args.seconds)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        for n in range(writes):
            body = {"name": f"bench-{n}:{time.time():.6f}"}
            await loop.run_in_executor(
                None, lambda b=body: post(servers[0].http + "/items/products/1", b, token, "PATCH")
            )
            delay = started + (n + 1) / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        deadline = time.monotonic() + 30
        expected = writes * args.subscribers
        while sum(counts) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        latencies.sort()
        return {
            "processes": args.processes,
            "subscribers": args.subscribers,
            "writes": writes,
            "rate_per_s": args.rate,
            "frames_expected": expected,
            "frames_received": sum(counts),
            "frames_per_s": round(sum(counts) / elapsed),
            "connect_seconds": round(connect_seconds, 2),
            "connect_concurrency": args.connect_concurrency,
            "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
            "latency_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        }
    finally:
        for server in servers:
            server.stop()
        if database.drop:
            database.drop()
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate", type=float, default=10, help="writes per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connect-concurrency", type=int, default=100, help="connects in flight at once")
    result = asyncio.run(run(parser.parse_args()))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
