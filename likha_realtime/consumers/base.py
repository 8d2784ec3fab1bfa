"""``JsonSocketConsumer``: the JSON sockets' shared lifecycle — limits, auth, heartbeat, decode, dispatch."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from channels.generic.websocket import AsyncWebsocketConsumer

from likha_realtime.conf import realtime_settings, socket_conn_limit
from likha_realtime.protocol.decode import FrameError, decode_frame
from likha_realtime.protocol.heartbeat import Beat, Heartbeat
from realtime_auth.mixin import RealtimeAuthMixin
from realtime_auth.protocol import CloseCode, ErrorCode, RealtimeError, with_uid

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class TooManyConnections(RealtimeError):
    code = ErrorCode.REQUESTS_EXCEEDED
    default_message = "Too many connections."
    close_code = CloseCode.TOO_MANY_REQUESTS


class JsonSocketConsumer(RealtimeAuthMixin, AsyncWebsocketConsumer):
    """Subclasses set ``socket`` and ``handlers`` (message type -> method name) and implement the methods.

    Dispatch is on that whitelist only; a client-supplied string is never used to look up an attribute.
    """

    # Every JSON socket answers pings; subclasses extend this whitelist with their own messages.
    handlers: ClassVar[dict[str, str]] = {"ping": "handle_ping", "pong": "handle_pong"}
    open_connections: ClassVar[Counter[str]] = Counter()  # per server process, by socket

    heartbeat: Heartbeat
    _heartbeat_task: asyncio.Task[None] | None = None
    _counted = False

    async def connect(self) -> None:
        limit = socket_conn_limit(self.socket)
        if limit is not None and self.open_connections[self.socket] >= limit:
            await self.accept()
            await self.send_error("server", TooManyConnections())
            return
        self.open_connections[self.socket] += 1
        self._counted = True
        if not await self.auth_connect():
            return
        state = "authenticated" if self.identity else "awaiting auth" if self.auth.awaiting_handshake else "public role"
        logger.info("%s socket connected (%s)", self.socket, state)
        self.heartbeat = Heartbeat()
        if realtime_settings.HEARTBEAT_ENABLED:
            self._heartbeat_task = asyncio.get_running_loop().create_task(self._beat())
        await self.on_open()

    async def disconnect(self, code: int) -> None:
        if self._counted:
            self.open_connections[self.socket] -= 1
            self._counted = False
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        if hasattr(self, "auth"):
            await self.auth_disconnect()
        await self.on_close()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self._closing:
            return
        self.heartbeat.heard()
        try:
            frame = decode_frame(
                text_data, bytes_data, realtime_settings.MESSAGE_MAX_BYTES, frozenset(self.handlers) | {"auth"}
            )
        except FrameError as error:
            if not await self.authenticate_frame(None if error.uid is None else {"uid": error.uid}):
                await self.send_error("server", error, error.uid)
            return
        except RealtimeError as error:  # too large: answered and closed whatever the auth state
            await self.send_error("server", error)
            return
        if await self.authenticate_frame(frame):
            return
        await self._dispatch(frame)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        handler: Handler = getattr(self, self.handlers[frame["type"]])
        try:
            async with self._auth_lock:  # a message is handled entirely under the rights it arrived with
                await handler(frame)
        except RealtimeError as error:
            await self.send_error(frame["type"], error, frame.get("uid"))
        except Exception:
            logger.exception("%s socket: unhandled error in %s handler", self.socket, frame["type"])
            await self.send_error(frame["type"], RealtimeError(), frame.get("uid"))

    async def _beat(self) -> None:
        period = float(realtime_settings.HEARTBEAT_PERIOD)
        while not self._closing:
            await asyncio.sleep(period)
            if self.heartbeat.tick() is Beat.CLOSE:
                logger.info("%s socket closed: no message for a heartbeat period", self.socket)
                await self.close_with(CloseCode.HEARTBEAT_TIMEOUT)
                return
            await self.send_frame({"type": "ping"})

    async def handle_ping(self, message: dict[str, Any]) -> None:
        await self.send_frame(with_uid({"type": "pong"}, message.get("uid")))

    async def handle_pong(self, message: dict[str, Any]) -> None:
        """A client's answer to the heartbeat ping: receiving it was the point."""

    async def on_open(self) -> None:
        """Hook: the socket is accepted and its auth state is set."""

    async def on_close(self) -> None:
        """Hook: the socket is gone; release what it held."""
