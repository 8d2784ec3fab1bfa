"""The auth state machine of one connection (PROTOCOL §3): pure, clock-injected, no sockets and no I/O."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from realtime_auth.errors import AuthTimeout, HandshakeFailed, LoginThrottled, TokenExpired, TooManyAttempts
from realtime_auth.wire import CloseCode, RealtimeError

MAX_AUTH_FAILURES = 5  # per connection, in public mode (other modes close at the first failure)


class Mode(StrEnum):
    PUBLIC = "public"
    HANDSHAKE = "handshake"
    STRICT = "strict"


class Phase(Enum):
    HANDSHAKE = "handshake"  # accepted, waiting for the first message to authenticate
    PUBLIC = "public"  # public role, nothing pending
    AUTHENTICATED = "authenticated"  # a user, until its token's exp
    REAUTH = "reauth"  # token expired or revoked: public role, waiting for a new auth until the deadline
    CLOSED = "closed"


@dataclass(frozen=True)
class Identity:
    """Who a connection is: an authenticated user, until ``expires_at`` (epoch seconds; ``None`` never)."""

    user: Any
    expires_at: float | None
    session_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What the socket must do now: send ``error`` (when set), then close with ``close`` (when set)."""

    error: RealtimeError | None = None
    close: CloseCode | None = None


class AuthSession:
    """Tracks one connection's identity and its single pending deadline.

    The driver (``RealtimeAuthMixin``) calls ``tick()`` at ``next_deadline()`` and after every transition
    re-arms its one timer; every method answers what to send and whether to close.
    """

    def __init__(self, mode: str, timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.mode = Mode(mode)
        self.timeout = timeout
        self.clock = clock
        self.phase = Phase.PUBLIC
        self.identity: Identity | None = None
        self._deadline: float | None = None
        self.failures = 0

    # -- queries -------------------------------------------------------------------------------------------

    @property
    def user(self) -> Any:
        """The authenticated user, or ``None`` for the public role (before auth, after failure or expiry)."""
        return self.identity.user if self.identity and self.phase is Phase.AUTHENTICATED else None

    @property
    def awaiting_handshake(self) -> bool:
        return self.phase is Phase.HANDSHAKE

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def next_deadline(self) -> float | None:
        """Epoch seconds at which ``tick()`` has something to do, or ``None``."""
        if self.phase is Phase.AUTHENTICATED:
            return self.identity.expires_at if self.identity else None
        if self.phase in (Phase.HANDSHAKE, Phase.REAUTH):
            return self._deadline
        return None

    # -- transitions ---------------------------------------------------------------------------------------

    def start(self, identity: Identity | None) -> None:
        """The socket was accepted, authenticated by its URL token (``identity``) or not."""
        if identity is not None:
            self.succeed(identity)
        elif self.mode is Mode.HANDSHAKE:
            self.phase = Phase.HANDSHAKE
            self._deadline = self.clock() + self.timeout
        elif self.mode is Mode.STRICT:
            raise ValueError("strict mode needs a URL token before accept()")
        else:
            self.phase = Phase.PUBLIC

    def succeed(self, identity: Identity) -> None:
        if self.phase is Phase.CLOSED:
            return
        self.identity = identity
        self.phase = Phase.AUTHENTICATED
        self._deadline = None
        self.failures = 0

    def fail(self, error: RealtimeError) -> Verdict:
        """An ``auth`` message (or, during the handshake, any message) did not authenticate."""
        if self.phase is Phase.CLOSED:
            return Verdict()
        if self.phase is Phase.HANDSHAKE:  # a throttled login says so (REQUESTS_EXCEEDED and its wait), then 4401
            return self._close(
                error if isinstance(error, LoginThrottled) else HandshakeFailed(), CloseCode.UNAUTHORIZED
            )
        if self.mode is not Mode.PUBLIC:
            return self._close(error, CloseCode.UNAUTHORIZED)
        self.failures += 1
        if self.failures >= MAX_AUTH_FAILURES:  # password guessing: each attempt costs a hash
            return self._close(TooManyAttempts())
        # Public mode stays open with the public role; a pending re-auth window keeps running.
        self.identity = None
        if self.phase is Phase.AUTHENTICATED:
            self.phase = Phase.PUBLIC
        return Verdict(error)

    def expire(self) -> Verdict:
        """The token expired or the session was revoked: public role, and a window to re-authenticate."""
        if self.phase is not Phase.AUTHENTICATED:
            return Verdict()
        self.identity = None
        self.phase = Phase.REAUTH
        self._deadline = self.clock() + self.timeout
        return Verdict(TokenExpired())

    def tick(self) -> Verdict:
        """Act on a deadline that has passed (early calls do nothing)."""
        deadline = self.next_deadline()
        if deadline is None or self.clock() < deadline:
            return Verdict()
        if self.phase is Phase.HANDSHAKE:
            return self._close(HandshakeFailed())
        if self.phase is Phase.AUTHENTICATED:
            return self.expire()
        # REAUTH window over.
        if self.mode is Mode.PUBLIC:
            self.phase = Phase.PUBLIC
            self._deadline = None
            return Verdict(AuthTimeout())
        return self._close(AuthTimeout(), CloseCode.UNAUTHORIZED)

    def _close(self, error: RealtimeError, code: CloseCode | None = None) -> Verdict:
        self.phase = Phase.CLOSED
        self.identity = None
        self._deadline = None
        return Verdict(error, code or error.close_code or CloseCode.UNAUTHORIZED)
