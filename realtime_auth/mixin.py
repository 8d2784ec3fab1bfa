"""``RealtimeAuthMixin``: the one implementation of PROTOCOL §3 auth, shared by every realtime consumer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs

from django.contrib.auth.models import AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder

from realtime_auth.conf import socket_auth
from realtime_auth.credentials import (
    AuthResult,
    authenticate,
    parse_credentials,
    reload_identity,
    verify_url_token,
)
from realtime_auth.protocol import (
    AuthError,
    CloseCode,
    RealtimeError,
    TokenExpired,
    error_frame,
    valid_uid,
    with_uid,
)
from realtime_auth.revocation import groups_for
from realtime_auth.session import AuthSession, Identity, Verdict

logger = logging.getLogger(__name__)


def encode(value: Any) -> str:
    """Compact JSON as every socket sends it (Decimal and datetime as strings, never NaN)."""
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), allow_nan=False)


def query_param(scope: dict[str, Any], name: str) -> str | None:
    """The first value of ``name`` in the connection URL's query string (``None`` when absent)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


class RealtimeAuthMixin:
    """Mode-aware authentication for a channels ``AsyncWebsocketConsumer``.

    The consumer declares ``socket`` (``"rest"``, ``"graphql"``, ``"logs"``), calls ``auth_connect()`` from
    ``connect()``, offers every decoded frame to ``authenticate_frame()`` first, and ``auth_disconnect()`` on
    disconnect. It reads ``self.user`` (the public role is ``AnonymousUser``) and may override
    ``on_identity_changed()`` to re-check what it holds when the user or role changes.
    """

    socket: ClassVar[str] = ""
    timer: ClassVar[Callable[[], float]] = time.time  # wall clock, because token ``exp`` is epoch seconds
    auth_context: ClassVar[str] = "auth"
    auth_error_frames: ClassVar[bool] = True  # send PROTOCOL §3 error frames (not on GraphQL's socket)
    auth_close_code: ClassVar[CloseCode] = CloseCode.UNAUTHORIZED  # the close for failed or timed-out auth
    expiry_closes: ClassVar[bool] = False  # token expiry closes 4403 at once instead of the re-auth window

    auth: AuthSession
    _auth_lock: asyncio.Lock
    _auth_timer: asyncio.TimerHandle | None = None
    _auth_task: asyncio.Task[None] | None = None
    _closing: bool = False
    _auth_groups: frozenset[str] = frozenset()

    # -- what consumers use --------------------------------------------------------------------------------

    @property
    def user(self) -> Any:
        return self.auth.user or AnonymousUser()

    @property
    def identity(self) -> Identity | None:
        return self.auth.identity if self.auth.user is not None else None

    async def auth_connect(self, subprotocol: str | None = None) -> bool:
        """Authenticate the URL token (strict: required), then accept; ``False`` when the socket was refused."""
        accepted, identity = await self.auth_url_token()
        if not accepted:
            return False
        await self.accept(subprotocol)  # type: ignore[attr-defined]
        await self.auth_start(identity)
        return True

    async def auth_url_token(self) -> tuple[bool, Identity | None]:
        """Before accept: the URL token's identity; ``(False, None)`` after refusing the socket (HTTP 403)."""
        mode, timeout = socket_auth(self.socket)
        self.auth = AuthSession(mode, timeout, clock=self.timer)
        self._auth_lock = asyncio.Lock()
        token = query_param(self.scope, "access_token")  # type: ignore[attr-defined]
        if token is None and mode != "strict":
            return True, None
        try:
            return True, await verify_url_token(token or "")
        except AuthError:
            logger.info("%s socket refused: missing or invalid URL token", self.socket)
            await self.close()  # type: ignore[attr-defined]  # before accept(): HTTP 403
            return False, None

    async def auth_start(self, identity: Identity | None) -> None:
        """The socket is accepted: start the session (handshake deadline, or the identity's expiry)."""
        self.auth.start(identity)
        self._publish_user()
        self._arm_auth_timer()
        await self._join_auth_groups(groups_for(self.identity))
        if identity is not None:
            await self._confirm_identity()

    async def auth_credentials(self, payload: dict[str, Any], apply_failure: bool = True) -> bool:
        """Log in with a credentials payload (GraphQL's ``connection_init``); ``False`` when refused, after acting
        on the verdict (close or public role) unless ``apply_failure`` is false (the caller rejects)."""
        async with self._auth_lock:
            previous = self.user
            try:
                result = await authenticate(parse_credentials(payload))
            except Exception as error:
                if not isinstance(error, AuthError):
                    logger.exception("%s socket: unexpected error while authenticating", self.socket)
                    error = AuthError()
                if apply_failure:
                    await self._apply(self.auth.fail(error), None, previous)
                return False
            self.auth.succeed(result.identity)
            await self._identity_changed(previous)
            await self._confirm_identity()
            return self.auth.user is not None

    async def authenticate_frame(self, frame: dict[str, Any] | None) -> bool:
        """Handle ``frame`` if it is auth business (an ``auth`` message, or anything during the handshake).

        ``frame`` is ``None`` for input that could not be decoded. Returns ``True`` when the frame was consumed.
        """
        is_auth = isinstance(frame, dict) and frame.get("type") == "auth"
        if not is_auth and not self.auth.awaiting_handshake:
            return False
        uid = frame.get("uid") if isinstance(frame, dict) and valid_uid(frame.get("uid")) else None
        async with self._auth_lock:
            previous = self.user
            if not is_auth:
                await self._apply(self.auth.fail(AuthError()), uid, previous)
                return True
            try:
                result = await authenticate(parse_credentials(frame))  # type: ignore[arg-type]
            except AuthError as error:
                logger.info("%s socket auth failed", self.socket)
                await self._apply(self.auth.fail(error), uid, previous)
                return True
            except Exception:  # never a traceback to the client, never a crashed socket
                logger.exception("%s socket: unexpected error while authenticating", self.socket)
                await self._apply(self.auth.fail(AuthError()), uid, previous)
                return True
            await self._succeed(result, uid)
            await self._confirm_identity()
        return True

    async def auth_disconnect(self) -> None:
        self._closing = True
        await self._join_auth_groups(set())
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self._auth_task is not None and self._auth_task is not asyncio.current_task():
            self._auth_task.cancel()

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        """Hook: an error (with its close code) to refuse ``identity`` on this socket although its credentials
        are valid (the logs socket refuses non-admins); ``None`` accepts it."""
        return None

    async def on_identity_changed(self, previous: Any) -> None:
        """Hook: the user or role changed (auth, failure, expiry, revocation). ``previous`` is the old user."""

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send_text(encode(frame))

    async def send_text(self, text: str) -> None:
        """Send an already encoded frame (nothing once the socket is closing)."""
        if not self._closing:
            await self.send(text_data=text)  # type: ignore[attr-defined]

    async def send_error(self, context: str, error: RealtimeError, uid: Any = None) -> None:
        await self.send_frame(error_frame(context, error, uid))
        if error.close_code is not None:
            await self.close_with(error.close_code)

    async def close_with(self, code: CloseCode) -> None:
        if self._closing:
            return
        self._closing = True
        await self.close(code=int(code), reason=code.reason or None)  # type: ignore[attr-defined]

    async def auth_revoke(self, message: dict[str, Any]) -> None:
        """Channel-layer ``auth.revoke``: this socket's session or user was revoked on some server process."""
        if message.get("group") in self._auth_groups:
            logger.info("%s socket: session revoked", self.socket)
            await self.expire_identity()

    async def auth_reload(self, message: dict[str, Any]) -> None:
        """Channel-layer ``auth.reload``: the user's rights changed (groups, permissions, superuser)."""
        if message.get("group") not in self._auth_groups:
            return
        async with self._auth_lock:
            identity = self.auth.identity
            if identity is None or self.auth.user is None:
                return
            fresh = await reload_identity(identity)
            previous = self.user
            if fresh is None:
                await self._apply(self.auth.expire(), None, previous)
                return
            self.auth.succeed(fresh)
            await self._identity_changed(previous, force=True)

    async def _confirm_identity(self) -> None:
        """Re-check the identity once this socket hears revocations: one revoked in between is not missed."""
        identity = self.auth.identity
        if identity is None or self.auth.user is None:
            return
        if await reload_identity(identity) is None:
            logger.info("%s socket: session revoked while authenticating", self.socket)
            await self._apply(self.auth.expire(), None, self.user)

    async def expire_identity(self) -> None:
        """End the current authentication as if its token had expired (revocation uses this)."""
        async with self._auth_lock:
            previous = self.user
            verdict = self.auth.expire()
            await self._apply(verdict, None, previous)

    # -- internals -----------------------------------------------------------------------------------------

    async def _succeed(self, result: AuthResult, uid: Any) -> None:
        refusal = await self.authorize(result.identity)
        if refusal is not None:  # valid credentials, but not for this socket: they never count
            logger.info("%s socket refused user %s", self.socket, result.identity.user.pk)
            await self.send_error(self.auth_context, refusal, uid)
            return
        previous = self.user
        self.auth.succeed(result.identity)
        reply: dict[str, Any] = {"type": "auth", "status": "ok"}
        if result.refresh_token:
            reply["refresh_token"] = result.refresh_token
        await self.send_frame(with_uid(reply, uid))
        logger.info("%s socket authenticated user %s", self.socket, result.identity.user.pk)
        await self._identity_changed(previous)

    async def _apply(self, verdict: Verdict, uid: Any, previous: Any) -> None:
        if self.expiry_closes and isinstance(verdict.error, TokenExpired):
            await self.close_with(CloseCode.FORBIDDEN)  # GraphQL: clients reconnect with fresh credentials
            return
        if verdict.error is not None and self.auth_error_frames:
            await self.send_frame(error_frame(self.auth_context, verdict.error, uid))
        if verdict.close is not None:
            await self.close_with(self.auth_close_code if verdict.close is CloseCode.UNAUTHORIZED else verdict.close)
            return
        await self._identity_changed(previous)

    async def _identity_changed(self, previous: Any, force: bool = False) -> None:
        self._publish_user()
        self._arm_auth_timer()
        await self._join_auth_groups(groups_for(self.identity))
        if force or previous != self.user:
            await self.on_identity_changed(previous)

    async def _join_auth_groups(self, wanted: set[str]) -> None:
        layer, name = self.channel_layer, self.channel_name  # type: ignore[attr-defined]
        if layer is None:
            return
        for group in self._auth_groups - wanted:
            await layer.group_discard(group, name)
        for group in wanted - self._auth_groups:
            await layer.group_add(group, name)
        self._auth_groups = frozenset(wanted)

    def _publish_user(self) -> None:
        self.scope["user"] = self.user  # type: ignore[attr-defined]

    def _arm_auth_timer(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        deadline = self.auth.next_deadline()
        if deadline is None or self._closing:
            return
        loop = asyncio.get_running_loop()
        self._auth_timer = loop.call_later(max(0.0, deadline - self.timer()), self._on_auth_timer)

    def _on_auth_timer(self) -> None:
        self._auth_timer = None
        self._auth_task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        async with self._auth_lock:
            previous = self.user
            verdict = self.auth.tick()
            await self._apply(verdict, None, previous)
