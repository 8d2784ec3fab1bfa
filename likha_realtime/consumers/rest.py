"""The REST-style socket (PROTOCOL §3–§6): auth, ping/pong; subscriptions and items plug in here."""

from __future__ import annotations

from typing import Any, ClassVar

from likha_realtime.consumers.base import JsonSocketConsumer
from realtime_auth.protocol import with_uid


class RestConsumer(JsonSocketConsumer):
    socket = "rest"
    handlers: ClassVar[dict[str, str]] = {"ping": "handle_ping", "pong": "handle_pong"}

    async def handle_ping(self, message: dict[str, Any]) -> None:
        await self.send_frame(with_uid({"type": "pong"}, message.get("uid")))

    async def handle_pong(self, message: dict[str, Any]) -> None:
        """A client's answer to the heartbeat ping: receiving it was the point."""
