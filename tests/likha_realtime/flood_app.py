"""A raw ASGI app for the slow-reader tests: sends as much as it is asked to, and says when its socket is gone."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]


async def application(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """WebSocket only. ``flood:<count>:<size>`` sends ``count`` text messages of ``size`` bytes, letting the event
    loop run between them (as a server writing to a socket does), then ``done``; ``ping`` answers ``pong``. On
    ``websocket.disconnect`` it prints ``flood app: disconnect <code>`` (to the server's log)."""
    if scope["type"] != "websocket":
        return
    flooding: set[asyncio.Task[None]] = set()

    async def flood(count: int, size: int) -> None:
        payload = "x" * size
        for _ in range(count):
            await send({"type": "websocket.send", "text": payload})
            await asyncio.sleep(0)
        await send({"type": "websocket.send", "text": "done"})

    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            command, _, rest = (event.get("text") or "").partition(":")
            if command == "flood":
                count, _, size = rest.partition(":")
                task = asyncio.get_running_loop().create_task(flood(int(count), int(size)))
                flooding.add(task)
                task.add_done_callback(flooding.discard)
            elif command == "ping":
                await send({"type": "websocket.send", "text": "pong"})
        elif event["type"] == "websocket.disconnect":
            print(f"flood app: disconnect {event.get('code')}", file=sys.stderr, flush=True)
            for task in flooding:
                task.cancel()
            return
