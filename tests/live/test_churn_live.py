"""Flat churn: sockets that come and go leave nothing behind in the server process (docs/RELIABILITY.md).

One daphne on Redis; each cycle opens sockets on all three paths (REST: ``auth`` by access token, ``subscribe``,
``init``; GraphQL: ``connection_init`` with the token and a subscription; logs: an admin subscribing), holds them
all until every one is subscribed, then closes them all at once — the mass close of a proxy restart or a network
blip. The server's Redis pool is kept small (``REDIS_MAX_CONNECTIONS``) so that the mass close exhausts it, as
thousands of sockets closing exhaust the default pool: leaving the revocation groups then fails for many sockets,
and some disconnects outlast daphne's ``application_close_timeout`` and are cancelled. Before the fix every such
consumer stayed registered (event listeners, group-refresh timers) with its transport: ~13-30 KB per connection.

After each cycle, once the server has released every connection (probe: daphne's connection table empty, our
sockets all uncounted), the probe (tests/live/churn_probe) counts live objects after a full ``gc.collect()``:
no consumer, protocol or transport may survive, nor any registration; the channel layer's per-channel receive
buffer may not grow. RSS (VmRSS) may not grow from the second cycle on by more than ``RSS_SLACK_KB_PER_CONNECTION``
averaged over the connections of the later cycles (justified below).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from tests.live.churn import GRAPHQL_SUBSCRIBE, SUBSCRIBE, Probe, expect
from tests.live.conftest import ADMIN, StartServer

CYCLES = 4
SOCKETS = 300  # per cycle: 80 % REST, 10 % GraphQL, 10 % logs
IN_FLIGHT = 20  # handshakes at once (each uses at most one Redis connection at a time)
POOL = "100"  # the server's Redis connections: a mass close of SOCKETS sockets needs ~2 x SOCKETS group leaves
# Before the fix a leaked connection kept 13-30 KB (measured: ~95 % of a mass close leaked). After it, no object of
# a connection survives (asserted exactly below) and the later cycles grew by 0 to 2.7 KB per connection per
# cycle, unevenly (+204/+740, +808/+40 kB for 300 connections): allocator noise, or a residual not found yet
# (docs/RELIABILITY.md, "Connection churn"). 3 KB per connection over the later cycles stays far below the leak.
RSS_SLACK_KB_PER_CONNECTION = 3.0
# Nothing of a connection may survive it.
GONE = (
    "likha_realtime.sockets.rest.RestConsumer",
    "likha_realtime.sockets.graphql.GraphQLConsumer",
    "likha_realtime.sockets.logs.LogsConsumer",
    "likha_realtime.server.ReasonWebSocketProtocol",
    "twisted.internet.tcp.Server",
    "realtime_auth.session.AuthSession",
    "likha_realtime.access.subscriptions.Subscription",
)


async def open_rest(url: str, token: str) -> Any:
    ws = await websockets.connect(url, proxy=None, open_timeout=60, ping_interval=None, close_timeout=60)
    await ws.send(json.dumps({"type": "auth", "access_token": token, "uid": "a"}))
    await expect(ws, {"type": "auth", "status": "ok", "uid": "a"})
    await ws.send(json.dumps(SUBSCRIBE))
    await expect(ws, {"type": "subscription", "event": "init", "uid": "s"})
    return ws


async def open_graphql(url: str, token: str) -> Any:
    ws = await websockets.connect(
        url, proxy=None, open_timeout=60, ping_interval=None, close_timeout=60, subprotocols=["graphql-transport-ws"]
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"access_token": token}}))
    await expect(ws, {"type": "connection_ack"})
    await ws.send(json.dumps(GRAPHQL_SUBSCRIBE))
    await ws.send(json.dumps({"type": "ping"}))  # answered after the subscription has started
    await expect(ws, {"type": "pong"})
    return ws


async def open_logs(url: str, token: str) -> Any:
    ws = await websockets.connect(url, proxy=None, open_timeout=60, ping_interval=None, close_timeout=60)
    await ws.send(json.dumps({"type": "auth", "access_token": token, "uid": "a"}))
    await expect(ws, {"type": "auth", "status": "ok", "uid": "a"})
    await ws.send(json.dumps({"type": "subscribe", "log_level": "error", "uid": "l"}))
    await expect(ws, {"type": "logs", "event": "subscribe", "log_level": "error", "uid": "l"})
    return ws


async def cycle(urls: dict[str, str], token: str) -> float:
    """Open SOCKETS sockets (IN_FLIGHT at a time), all subscribed, then close them all at once; returns when all
    were open (``time.monotonic()``)."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> Any:
        kind = "graphql" if i % 10 == 1 else "logs" if i % 10 == 2 else "rest"
        opener = {"rest": open_rest, "graphql": open_graphql, "logs": open_logs}[kind]
        async with gate:
            return await opener(urls[kind], token)

    sockets = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(SOCKETS))), timeout=300)
    opened = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets)), timeout=120)
    return opened


@pytest.mark.reliability
@pytest.mark.timeout(600)  # ~30 s per cycle on a loaded 2-core machine (the mass close: daphne reaps at 1/s)
def test_churned_connections_leave_nothing_behind(start_server: StartServer) -> None:
    probe, env = Probe.env()
    server = start_server(REDIS_MAX_CONNECTIONS=POOL, WEBSOCKETS_HEARTBEAT_ENABLED="false", **env)
    token = server.login(*ADMIN)["access_token"]
    urls = {"rest": server.ws_url(), "graphql": server.ws_url("/graphql"), "logs": server.ws_url("/websockets/logs")}
    reports = []
    for number in range(CYCLES):
        started = time.monotonic()
        opened = asyncio.run(cycle(urls, token))
        report = probe.settled(server)
        reports.append(report)
        print(
            f"cycle {number}: opened in {opened - started:.1f} s, closed and released in"
            f" {time.monotonic() - opened:.1f} s; VmRSS {report['rss_kb']} kB; layer {report['layer']}"
        )
        survivors = {name: report["types"][name] for name in GONE if report["types"][name]}
        assert survivors == {}, f"cycle {number}: connections survived their close: {survivors}"
        assert not any(report["registrations"].values()), report["registrations"]
        buffers = report["layer"].get("default.receive_buffer", 0)
        assert buffers <= reports[0]["layer"].get("default.receive_buffer", 0) + 2, report["layer"]
    growth_kb = reports[-1]["rss_kb"] - reports[1]["rss_kb"]
    churned = SOCKETS * (CYCLES - 2)
    print(f"RSS from cycle 1 to {CYCLES - 1}: {growth_kb:+d} kB over {churned} connections")
    assert growth_kb < RSS_SLACK_KB_PER_CONNECTION * churned, [r["rss_kb"] for r in reports]
    # The mass closes did exhaust the pool (else this test would not exercise the failure paths it is about).
    assert "could not leave its groups on close" in server.log() or "took too long to shut down" in server.log()
