"""The logs socket (PROTOCOL §7): admins watch the log lines of every server process live."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from channels.db import database_sync_to_async

from likha_realtime.consumers.base import JsonSocketConsumer
from likha_realtime.logs.levels import WIRE_LEVELS
from likha_realtime.logs.stream import LogTap, get_stream
from realtime_auth.protocol import AuthError, CloseCode, Forbidden, InvalidPayload, RealtimeError, error_frame, with_uid
from realtime_auth.session import Identity

logger = logging.getLogger(__name__)

CONTEXT = "logs"


class Unauthorized(AuthError):
    default_message = "Unauthorized access."
    close_code = CloseCode.FORBIDDEN


def is_admin(user: Any) -> bool:
    """Superusers, and active users holding ``likha_realtime.view_logs`` (directly or through a group)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    return bool(user.is_superuser or user.has_perm("likha_realtime.view_logs"))


def requested_level(message: dict[str, Any]) -> str:
    level = message.get("log_level")
    if isinstance(level, str) and level in WIRE_LEVELS:
        return level
    shown = "undefined" if level is None else level  # as Directus words a missing level
    raise InvalidPayload(f'Invalid "{shown}" log level')


class LogsConsumer(JsonSocketConsumer):
    socket = "logs"
    handlers: ClassVar[dict[str, str]] = {
        **JsonSocketConsumer.handlers,
        "subscribe": "handle_subscribe",
        "unsubscribe": "handle_unsubscribe",
    }

    tap_size: ClassVar[int | None] = None  # lines buffered for a slow reader (None: stream.TAP_SIZE)
    tap: LogTap | None = None
    admin: bool = False

    async def on_open(self) -> None:
        self.admin = await database_sync_to_async(is_admin)(self.user)
        if self.identity is not None and not self.admin and self.auth.mode != "public":
            await self._refuse(None)  # a URL token of a non-admin (handshake or strict mode)

    async def on_close(self) -> None:
        self._stop_streaming()

    # -- messages ----------------------------------------------------------------------------------------------

    async def handle_subscribe(self, message: dict[str, Any]) -> None:
        uid = message.get("uid")
        try:
            if not self.admin:
                raise Forbidden()
            level = requested_level(message)
        except RealtimeError as error:
            await self.send_error(CONTEXT, error, uid)
            return
        await self.send_frame(with_uid({"type": "logs", "event": "subscribe", "log_level": level}, uid))
        if self.tap is not None:
            self.tap.level = WIRE_LEVELS[level]
        else:
            self.tap = LogTap(self.send_text, WIRE_LEVELS[level], self.tap_size)
            await get_stream().add(self.tap)
        logger.info("logs socket subscribed at %s", level)

    async def handle_unsubscribe(self, message: dict[str, Any]) -> None:
        self._stop_streaming()
        await self.send_frame(with_uid({"type": "logs", "event": "unsubscribe"}, message.get("uid")))

    # -- rights ------------------------------------------------------------------------------------------------

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        """A non-admin's credentials are refused on this socket (handshake and strict mode) before they count."""
        if self.auth.mode != "public" and not await database_sync_to_async(is_admin)(identity.user):
            self._stop_streaming()
            return Unauthorized()
        return None

    async def on_identity_changed(self, previous: Any) -> None:
        self.admin = await database_sync_to_async(is_admin)(self.user)
        if self.admin:
            return
        self._stop_streaming()  # expiry, failed re-auth or lost rights: nothing more under the public role
        if self.identity is not None and self.auth.mode != "public":
            await self._refuse(None)

    async def _refuse(self, uid: Any) -> None:
        self._stop_streaming()
        await self.send_frame(error_frame("auth", Unauthorized(), uid))
        await self.close_with(CloseCode.FORBIDDEN)

    def _stop_streaming(self) -> None:
        if self.tap is not None:
            get_stream().discard(self.tap)
            self.tap.close()
            self.tap = None
