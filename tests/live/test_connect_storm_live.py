"""A connect storm: hundreds of authenticated sockets opened at once all join, subscribe and receive events."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.live.conftest import ADMIN, StartServer

SOCKETS = 300


async def storm(url: str, token: str, write: asyncio.Event, received: list[int]) -> None:
    async with websockets.connect(f"{url}?access_token={token}", proxy=None, open_timeout=60, ping_interval=None) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "subscribe",
                    "collection": "products",
                    "event": "update",
                    "item": 2,
                    "query": {"fields": ["id", "stock"]},
                    "uid": "storm",
                }
            )
        )
        assert json.loads(await ws.recv()) == {"type": "subscription", "event": "init", "uid": "storm"}
        received.append(0)
        if len(received) == SOCKETS:
            write.set()
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        while frame == {"type": "ping"}:  # the server's heartbeat, if the storm outlasts a period
            await ws.send(json.dumps({"type": "pong"}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        assert frame == {"type": "subscription", "event": "update", "data": {"id": 2, "stock": 4242}, "uid": "storm"}
        received.append(1)


async def run_storm(url: str, token: str, patch: object) -> list[int]:
    write = asyncio.Event()
    received: list[int] = []
    tasks = [asyncio.create_task(storm(url, token, write, received)) for _ in range(SOCKETS)]
    await asyncio.wait_for(write.wait(), timeout=120)
    await asyncio.get_running_loop().run_in_executor(None, patch)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    return received


def test_hundreds_of_simultaneous_authenticated_connects_all_receive_the_event(start_server: StartServer) -> None:
    # Each authenticated connect joins two channel-layer groups at once: with redis-py's default pool of 100
    # connections this storm failed group joins ("Too many connections"); the configured pool carries it.
    server = start_server(WEBSOCKETS_REST_AUTH="strict")
    token = server.login(*ADMIN)["access_token"]

    def patch() -> None:
        import urllib.request

        request = urllib.request.Request(
            f"{server.http}/items/products/2",
            json.dumps({"stock": 4242}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="PATCH",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    received = asyncio.run(run_storm(server.ws_url(), token, patch))
    assert received.count(0) == SOCKETS
    assert received.count(1) == SOCKETS
    assert "Too many connections" not in server.log()
