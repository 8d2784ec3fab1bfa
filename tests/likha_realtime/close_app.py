"""A raw ASGI app for the server tests: accepts sockets and closes them with the code and reason asked for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]


async def application(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """HTTP: 200 ``ok``. WebSocket: ``/reject`` closes before accept; a text ``close:<code>:<reason>`` closes
    with them (empty: omitted)."""
    if scope["type"] == "http":  # any request: 200 "ok" (the access log is what the tests look at)
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            if scope["path"] == "/reject":
                await send({"type": "websocket.close", "code": 4403, "reason": "Forbidden"})
                return
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            command, _, rest = (event.get("text") or "").partition(":")
            if command != "close":
                await send({"type": "websocket.send", "text": f"unknown command: {command}"})
                continue
            code, _, reason = rest.partition(":")
            close: Message = {"type": "websocket.close"}
            if code:
                close["code"] = int(code)
            if reason:
                close["reason"] = reason
            await send(close)
        elif event["type"] == "websocket.disconnect":
            return
