"""Baseline (c) of ``make bench``: daphne alone, with the barest ASGI WebSocket application (no Channels consumer, no
channel layer, no Django). Run as ``daphne bench.perf.baseline_daphne:application``. Each socket answers a
``subscribe`` with an empty ``init``: it measures what daphne itself holds per open socket (RSS per connection), the
floor under any application it serves."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

INIT = json.dumps({"type": "subscription", "event": "init", "data": [], "uid": "b"})


async def application(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("text") and json.loads(message["text"]).get("type") == "subscribe":
                await send({"type": "websocket.send", "text": INIT})
        elif message["type"] == "websocket.disconnect":
            return
