"""The logs socket (PROTOCOL §7): admins watch the log lines of every server process live."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from channels.db import database_sync_to_async

from likha_realtime.logs.levels import WIRE_LEVELS
from likha_realtime.logs.stream import LogTap, get_stream
from likha_realtime.sockets.base import JsonSocketConsumer
from likha_realtime.wire.errors import Forbidden, InvalidPayload
from realtime_auth.errors import AuthError
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode, RealtimeError, with_uid

logger = logging.getLogger(__name__)

CONTEXT = "logs"


class Unauthorized(AuthError):
    default_message = "Unauthorized access."
    close_code = CloseCode.FORBIDDEN


def is_admin(user: Any) -> bool:
    """Superusers, and active users holding ``likha_realtime.view_logs`` (directly or through a group)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    # A user model without PermissionsMixin has neither (docs/CONFIGURATION.md, "User model").
    if getattr(user, "is_superuser", False):
        return True
    has_perm = getattr(user, "has_perm", None)
    return bool(has_perm is not None and has_perm("likha_realtime.view_logs"))


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
    contexts: ClassVar[dict[str, str]] = {"auth": "auth", "subscribe": CONTEXT, "unsubscribe": CONTEXT}

    tap_size: ClassVar[int | None] = None  # lines buffered for a slow reader (None: stream.TAP_SIZE)
    tap: LogTap | None = None
    admin: bool = False

    async def on_close(self) -> None:
        self.release()

    def release(self) -> None:
        super().release()
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
            self.tap = LogTap(self.send_line, WIRE_LEVELS[level], self.tap_size)
            await get_stream().add(self.tap)
        logger.info("logs socket subscribed at %s", level)

    async def handle_unsubscribe(self, message: dict[str, Any]) -> None:
        self._stop_streaming()
        await self.send_frame(with_uid({"type": "logs", "event": "unsubscribe"}, message.get("uid")))

    # -- rights ------------------------------------------------------------------------------------------------

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        """The logs socket's rule, stated once and met on every login and every change of rights: in handshake and
        strict mode only admins may be logged in here; in public mode anyone may, but only admins stream."""
        if self.auth.mode == "public" or await database_sync_to_async(is_admin)(identity.user):
            return await super().authorize(identity)  # the connection limit per user
        return Unauthorized()

    async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
        """Expiry, failed re-auth, changed rights or another user: streaming stops unless the user is an admin.
        Lines wait for the auth lock (``send_line``), so none goes out between the change and this check."""
        self.admin = await database_sync_to_async(is_admin)(self.user)
        if not self.admin:
            self._stop_streaming()

    async def send_line(self, text: str) -> None:
        """A log line goes out only while no login or rights change is under way (they hold the auth lock)."""
        async with self._auth_lock:
            if self.admin:
                await self.send_text(text)

    def _stop_streaming(self) -> None:
        if self.tap is not None:
            get_stream().discard(self.tap)
            self.tap.close()
            self.tap = None
