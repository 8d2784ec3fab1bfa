"""One INFO line per HTTP request at the ASGI level (``request_log``), so a host project needs no middleware.

The line, on logger ``likha_realtime.requests``: ``<METHOD> <path> <status> <ms>ms`` — the path without its query
string, secrets masked (``logs.redact``) and control characters escaped; the status of ``http.response.start``, or
``500`` when the application raised (or returned) before starting a response, or ``499`` (as nginx writes it) when
the client disconnected before a response was started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from likha_realtime.logs.redact import redact

logger = logging.getLogger("likha_realtime.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Set in the scope of a request this wrapper logs: ``RequestLogMiddleware`` (and a second wrapper) then stay silent.
LOGGED_SCOPE_KEY = "likha_realtime.request_log"
SERVER_ERROR = 500
CLIENT_CLOSED_REQUEST = 499


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``): one request, one log line."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def request_line(method: str, path: str, status: int, elapsed_seconds: float) -> tuple[str, str, str, int, float]:
    """The format and arguments of a request's line (shared with ``RequestLogMiddleware``)."""
    return "%s %s %s %.0fms", printable(method), printable(redact(path)), status, elapsed_seconds * 1000


class RequestLog:
    """The ASGI application ``app`` with one line logged per HTTP request; other scopes (lifespan) pass through."""

    timer: Callable[[], float] = time.monotonic

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get(LOGGED_SCOPE_KEY):
            await self.app(scope, receive, send)
            return
        started = self.timer()
        status: int | None = None
        disconnected = False

        async def watch_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message.get("type") == "http.disconnect":
                disconnected = True
            return message

        async def watch_send(message: Message) -> None:
            nonlocal status
            if message.get("type") == "http.response.start" and status is None:
                status = int(message.get("status", SERVER_ERROR))
            await send(message)

        try:
            await self.app({**scope, LOGGED_SCOPE_KEY: True}, watch_receive, watch_send)
        except asyncio.CancelledError:
            disconnected = True  # a server cancels a request's application when its client has gone
            raise
        finally:
            if status is None:
                status = CLIENT_CLOSED_REQUEST if disconnected else SERVER_ERROR
            method, path = str(scope.get("method", "")), str(scope.get("path", ""))
            logger.info(*request_line(method, path, status, self.timer() - started))


def request_log(app: Any) -> Any:
    """``app`` (the HTTP application) logging each request's method, path, status and duration."""
    return RequestLog(app)
