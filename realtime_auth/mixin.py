"""``RealtimeAuthMixin``: the one implementation of PROTOCOL §3 auth, shared by every realtime socket.

It knows who is connecting and nothing about what a socket carries. The consumer that uses it provides
``auth_policy()`` (its mode and timeout), ``send_frame()`` and ``close_with()`` (its codec and close), besides the
channels consumer's ``accept()``, ``close()``, ``scope``, ``channel_layer`` and ``channel_name``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import parse_qs

from django.contrib.auth.models import AnonymousUser

from realtime_auth.credentials import (
    AuthResult,
    Kind,
    access_groups,
    authenticate,
    parse_credentials,
    reload_identity,
    verify_url_token,
)
from realtime_auth.errors import AuthError, LoginThrottled, TokenExpired
from realtime_auth.group_cleanup import group_cleanup
from realtime_auth.revocation import PUBLIC_GROUP, groups_for
from realtime_auth.session import AuthSession, Identity, Verdict
from realtime_auth.throttle import scope_address
from realtime_auth.wire import CloseCode, RealtimeError, error_frame, valid_uid, with_uid

logger = logging.getLogger(__name__)

Attempt = Callable[[], Awaitable[AuthResult]]


def query_param(scope: dict[str, Any], name: str) -> str | None:
    """The first value of ``name`` in the connection URL's query string (``None`` when absent)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


class RealtimeAuthMixin:
    """Mode-aware authentication for a channels consumer.

    The consumer declares ``socket`` (a name for logs), calls ``auth_url_token()`` before accepting,
    ``auth_start()`` once accepted, offers every decoded frame to ``authenticate_frame()`` first (or, for GraphQL,
    ``connection_init`` payloads to ``auth_credentials()``), and ``auth_disconnect()`` on disconnect. All three
    ways in (URL token, ``auth`` frame, ``connection_init``) go through ``_login()``, which calls ``authorize()``
    before the identity counts. It reads ``self.user`` (the public role is ``AnonymousUser``) and may override
    ``on_identity_changed()`` to re-check what it holds when the user or role changes.
    """

    socket: ClassVar[str] = ""
    # Wall clock, because token ``exp`` is epoch seconds. Not a ClassVar: mypy would bind it as a method.
    timer: Callable[[], float] = time.time
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
    auth_refusal: RealtimeError | None = None  # why the last login failed (``LoginThrottled``: over a login limit)
    _groups_timer: asyncio.TimerHandle | None = None
    # channels-redis forgets a group's members after its ``group_expiry`` (a day by default): the revocation
    # groups are joined again this often, or a socket open for a day would stop hearing revocations and reloads.
    group_refresh: float = 3600.0

    # -- what the consumer provides ------------------------------------------------------------------------

    def auth_policy(self) -> tuple[str, float]:
        """This socket's auth mode (public, handshake, strict) and auth timeout in seconds."""
        raise NotImplementedError

    async def send_frame(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def close_with(self, code: CloseCode) -> None:
        raise NotImplementedError

    # -- what consumers use --------------------------------------------------------------------------------

    @property
    def user(self) -> Any:
        return self.auth.user or AnonymousUser()

    @property
    def identity(self) -> Identity | None:
        return self.auth.identity if self.auth.user is not None else None

    async def auth_url_token(self) -> tuple[bool, Identity | None]:
        """Before accept: the URL token's identity; ``(False, None)`` after refusing the socket (HTTP 403)."""
        mode, timeout = self.auth_policy()
        self.auth = AuthSession(mode, timeout, clock=self.timer)
        self._auth_lock = asyncio.Lock()
        token = query_param(self.scope, "access_token")  # type: ignore[attr-defined]  # scope: from the consumer
        if token is None and mode != "strict":
            return True, None
        try:
            return True, await verify_url_token(token or "")
        except Exception as error:  # an unexpected error (database down) refuses too, never crashes the socket
            if isinstance(error, AuthError):
                logger.info("%s socket refused: missing or invalid URL token", self.socket)
            else:
                logger.exception("%s socket refused: unexpected error while checking the URL token", self.socket)
            self.auth_counted(error if isinstance(error, AuthError) else AuthError())
            await self.close()  # type: ignore[attr-defined]  # the consumer's close(); before accept(): HTTP 403
            return False, None

    async def auth_start(self, identity: Identity | None) -> bool:
        """The socket is accepted: log in with the URL token's identity, or start the session without one.
        ``False`` when the socket is closing (its identity was refused with a close)."""
        if identity is None:
            self.auth.start(None)
            self._publish_user()
            self._arm_auth_timer()
            if (
                not self.auth.awaiting_handshake
            ):  # awaiting a handshake, it has no rights at all (not the public role's)
                await self._join_auth_groups(groups_for(None))  # the public role's rights may change
            return True
        async with self._auth_lock:
            await self._login(_verified(identity), None)
        return not self._closing  # a refusal without a close of its own leaves the socket open, public role

    async def authenticate_frame(self, frame: dict[str, Any] | None) -> bool:
        """Handle ``frame`` if it is auth business (an ``auth`` message, or anything during the handshake).

        ``frame`` is ``None`` for input that could not be decoded. Returns ``True`` when the frame was consumed.
        """
        is_auth = isinstance(frame, dict) and frame.get("type") == "auth"
        if not is_auth and not self.auth.awaiting_handshake:
            return False
        uid = frame.get("uid") if isinstance(frame, dict) and valid_uid(frame.get("uid")) else None
        async with self._auth_lock:
            if not is_auth:
                self.auth_counted(AuthError())
                await self._apply(self.auth.fail(AuthError()), uid, self.user)
                return True
            attempt = _with_credentials(frame, self._client_address(), self._listen)  # type: ignore[arg-type]  # is_auth: dict
            await self._login(attempt, uid, reply=True)
        return True

    async def auth_credentials(self, payload: dict[str, Any]) -> bool:
        """Log in with a credentials payload (GraphQL's ``connection_init``); ``False`` when refused, and then the
        caller rejects the connection (nothing is sent or closed here; ``auth_refusal`` says why)."""
        async with self._auth_lock:
            attempt = _with_credentials(payload, self._client_address(), self._listen)
            return await self._login(attempt, None, refusal_closes=False)

    async def auth_disconnect(self) -> None:
        """The socket is closing: its timers and tasks stop at once, then it leaves its groups. A channel-layer
        failure (Redis down, its connection pool exhausted by a mass close) is logged, never raised, and the groups
        still joined are left by ``auth_release()`` in the background."""
        self._stop_auth_timers()
        try:
            await self._join_auth_groups(set())
        except Exception as error:
            logger.info("%s socket: could not leave its groups on close (%s); left behind it", self.socket, error)
        self.auth_release()

    def auth_release(self) -> None:
        """Synchronous and idempotent: nothing of this mixin keeps the socket alive once its application has ended,
        however it ended (``disconnect()`` done or failed, an error, or the server cancelled it): timers and tasks
        stop, and the groups it could not leave yet are left behind it (``group_cleanup``, which keeps only the
        channel name)."""
        self._stop_auth_timers()
        groups, self._auth_groups = self._auth_groups, frozenset()
        layer, name = getattr(self, "channel_layer", None), getattr(self, "channel_name", None)
        if groups and layer is not None and name is not None:
            group_cleanup().leave(layer, name, groups)

    def _stop_auth_timers(self) -> None:
        self._closing = True
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self._groups_timer is not None:
            self._groups_timer.cancel()
            self._groups_timer = None
        if self._auth_task is not None and self._auth_task is not asyncio.current_task():
            self._auth_task.cancel()
            self._auth_task = None

    def auth_counted(self, error: RealtimeError | None) -> None:
        """Hook: an authentication ended, ``None`` when it succeeded, else why not (a failed or refused login, the
        handshake's or re-auth window's timeout, an expiry, a revocation); each once. For metrics; never raises."""

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        """Hook: an error (with its close code) to refuse ``identity`` on this socket although its credentials
        are valid (the logs socket refuses non-admins); ``None`` accepts it. Runs on every way of logging in."""
        return None

    async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
        """Hook: the user or role changed (auth, failure, expiry, revocation), or its rights did
        (``rights_changed``: the same user or the public role, re-read after a change of groups or permissions).
        ``previous`` is the old user."""

    async def auth_revoke(self, message: Mapping[str, Any]) -> None:
        """Channel-layer ``auth.revoke``: this socket's session or user was revoked on some server process."""
        if message.get("group") in self._auth_groups:
            logger.info("%s socket: session revoked", self.socket)
            await self.expire_identity()

    async def auth_reload(self, message: Mapping[str, Any]) -> None:
        """Channel-layer ``auth.reload``: the user's rights changed (groups, permissions, superuser). The identity
        is adopted again as it is now, through ``authorize()`` like a login."""
        group = message.get("group")
        if group not in self._auth_groups:
            return
        async with self._auth_lock:
            if group == PUBLIC_GROUP:  # the public role's rights: only a socket still in that role re-reads them
                if self.identity is None and not self._closing:
                    await self._identity_changed(self.user, force=True)
                return
            identity = self.auth.identity
            if identity is None or self.auth.user is None:
                return
            await self._adopt(identity, None, self.user, reloaded=True)

    async def expire_identity(self) -> None:
        """End the current authentication as if its token had expired (revocation uses this)."""
        async with self._auth_lock:
            previous = self.user
            verdict = self.auth.expire()
            if verdict.error is not None:
                self.auth_counted(verdict.error)
            await self._apply(verdict, None, previous)

    # -- the one login path --------------------------------------------------------------------------------

    async def _login(self, attempt: Attempt, uid: Any, *, reply: bool = False, refusal_closes: bool = True) -> bool:
        """Check credentials, then adopt their identity (``_adopt``), under the lock.

        ``reply`` sends the PROTOCOL §3 ``auth`` ok frame. A failure or refusal is acted on here (error frame,
        close or public role) unless ``refusal_closes`` is false: then the caller rejects. ``True`` when the
        connection is now authenticated as that identity.
        """
        previous = self.user
        self.auth_refusal = None
        try:
            result = await attempt()
        except Exception as error:  # never a traceback to the client, never a crashed socket
            if not isinstance(error, AuthError):
                logger.exception("%s socket: unexpected error while authenticating", self.socket)
                error = AuthError()
            self.auth_refusal = error
            self.auth_counted(error)
            logger.info(
                "%s socket auth failed%s", self.socket, " (throttled)" if isinstance(error, LoginThrottled) else ""
            )
            if refusal_closes:
                await self._apply(self.auth.fail(error), uid, previous)
            else:
                await self._settle_groups()  # what the attempt listened to for credentials that failed
            return False
        refresh_token = result.refresh_token if reply else None
        return await self._adopt(
            result.identity,
            uid,
            previous,
            reply=reply,
            refresh_token=refresh_token,
            refusal_closes=refusal_closes,
            listened=result.listened,
        )

    async def _adopt(
        self,
        identity: Identity,
        uid: Any,
        previous: Any,
        *,
        reply: bool = False,
        refresh_token: str | None = None,
        refusal_closes: bool = True,
        reloaded: bool = False,
        listened: frozenset[str] = frozenset(),
    ) -> bool:
        """The one way an identity becomes (or stays) this socket's: as it is *now*, and only if ``authorize()``
        accepts it.

        The socket first listens for the identity's revocations and rights changes, then re-reads it: a change
        committed before the re-read is in what is read, one committed after reaches this socket as a message that
        is handled after this (under the same lock). Nothing is missed in between.
        """
        wanted = groups_for(identity)
        if wanted <= listened and wanted <= self._auth_groups and getattr(identity.user, "is_active", False):
            fresh: Identity | None = identity  # read from the database after its groups were listened to
        else:
            await self._join_auth_groups(set(self._auth_groups) | wanted)
            fresh = await reload_identity(identity)
        if fresh is None:  # revoked, deactivated or deleted in the meantime
            logger.info("%s socket: session revoked while authenticating", self.socket)
            self.auth_counted(AuthError())
            verdict = self.auth.expire() if reloaded else self.auth.fail(AuthError())
            if refusal_closes or reloaded:
                await self._apply(verdict, uid, previous)
            await self._settle_groups()
            return False
        refusal = await self.authorize(fresh)
        if refusal is not None:  # valid credentials, but not for this socket (or no longer): they never count
            logger.info("%s socket refused user %s", self.socket, fresh.user.pk)
            self.auth_counted(refusal)
            if refusal_closes and refusal.close_code is not None:
                await self._refuse(refusal, uid)
            elif refusal_closes:  # no close of its own: like failed credentials (public role, or close per mode)
                await self._apply(self.auth.fail(refusal), uid, previous)
            await self._settle_groups()
            return False
        self.auth.succeed(fresh)
        if reply:
            ok: dict[str, Any] = {"type": "auth", "status": "ok"}
            if refresh_token:
                ok["refresh_token"] = refresh_token
            await self.send_frame(with_uid(ok, uid))
        if not reloaded:
            logger.info("%s socket authenticated user %s", self.socket, fresh.user.pk)
            self.auth_counted(None)
        await self._identity_changed(previous, force=reloaded)
        return True

    # -- internals -----------------------------------------------------------------------------------------

    def _client_address(self) -> str:
        return scope_address(self.scope)  # type: ignore[attr-defined]  # scope: from the consumer

    async def _refuse(self, error: RealtimeError, uid: Any) -> None:
        if self.auth_error_frames:
            await self.send_frame(error_frame(self.auth_context, error, uid))
        if error.close_code is not None:
            await self.close_with(error.close_code)

    async def _listen(self, groups: frozenset[str]) -> None:
        """Listen to ``groups`` too (a login's, before its identity is read: ``_with_credentials``)."""
        await self._join_auth_groups(set(self._auth_groups) | groups)

    async def _settle_groups(self) -> None:
        """Listen for the revocations of the identity the socket holds now (none once it is closing)."""
        await self._join_auth_groups(set() if self._closing else groups_for(self.identity))

    async def _apply(self, verdict: Verdict, uid: Any, previous: Any) -> None:
        if self.expiry_closes and isinstance(verdict.error, TokenExpired):
            await self.close_with(CloseCode.FORBIDDEN)  # GraphQL: clients reconnect with fresh credentials
            await self._identity_changed(previous)  # what is still in flight runs as the public role
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
            await self.on_identity_changed(previous, rights_changed=force)

    async def _join_auth_groups(self, wanted: set[str]) -> None:
        layer, name = self.channel_layer, self.channel_name  # type: ignore[attr-defined]  # from the consumer
        if layer is None:
            return
        # ``_auth_groups`` always holds every group the socket may be in, even when the channel layer fails
        # half-way: groups are counted before they are joined and forgotten once left.
        leaving = self._auth_groups - wanted
        if leaving:
            await _groups_call(layer, "discard", leaving, name)
            self._auth_groups = self._auth_groups - leaving
        joining = wanted - self._auth_groups
        if joining:
            self._auth_groups = self._auth_groups | joining
            await _groups_call(layer, "add", joining, name)
        if self._auth_groups and self._groups_timer is None and not self._closing:
            self._groups_timer = asyncio.get_running_loop().call_later(self.group_refresh, self._on_groups_timer)

    def _on_groups_timer(self) -> None:
        self._groups_timer = None
        if not self._closing:
            asyncio.get_running_loop().create_task(self._refresh_groups())

    async def _refresh_groups(self) -> None:
        """Join this socket's groups again (a member's expiry restarts), then arm the next refresh."""
        layer, name = self.channel_layer, self.channel_name  # type: ignore[attr-defined]  # from the consumer
        if self._closing:
            return
        try:
            await _groups_call(layer, "add", self._auth_groups, name)
        except Exception:  # Redis down for a moment: the next refresh tries again, long before expiry
            logger.exception("%s socket: could not refresh its groups %s", self.socket, sorted(self._auth_groups))
        if self._auth_groups and self._groups_timer is None and not self._closing:
            self._groups_timer = asyncio.get_running_loop().call_later(self.group_refresh, self._on_groups_timer)

    def _publish_user(self) -> None:
        self.scope["user"] = self.user  # type: ignore[attr-defined]  # scope: from the channels consumer

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
            if verdict.error is not None:
                self.auth_counted(verdict.error)
            await self._apply(verdict, None, previous)


async def _groups_call(layer: Any, action: str, groups: frozenset[str] | set[str], channel: str) -> None:
    """``group_add`` / ``group_discard`` of ``channel`` in each of ``groups``: in one call where the layer batches
    them (``group_add_many``: the project's Redis layer, one round trip), else one call per group."""
    ordered = sorted(groups)
    many = getattr(layer, f"group_{action}_many", None)
    if many is not None:
        await many(ordered, channel)
        return
    one = getattr(layer, f"group_{action}")
    for group in ordered:
        await one(group, channel)


def _with_credentials(
    payload: dict[str, Any], address: str, listen: Callable[[frozenset[str]], Awaitable[None]] | None = None
) -> Attempt:
    """An attempt to log in with the credentials of an ``auth`` frame or ``connection_init`` payload, sent from the
    client ``address`` (the login throttle counts by it).

    With ``listen``, an access token's revocation groups (from its verified claims) are listened to before its
    session and user are read from the database: that one read is then also the re-read after listening that
    ``_adopt`` needs (one database round of the two a login took)."""

    async def attempt() -> AuthResult:
        credentials = parse_credentials(payload, address)
        if listen is None or credentials.kind is not Kind.ACCESS_TOKEN:
            return await authenticate(credentials)
        groups = access_groups(credentials)
        await listen(groups)
        return replace(await authenticate(credentials), listened=groups)

    return attempt


def _verified(identity: Identity) -> Attempt:
    """An attempt that presents an identity already verified (the URL token, checked before accept)."""

    async def attempt() -> AuthResult:
        return AuthResult(identity)

    return attempt
