"""The auth state machine, driven by a fake clock: every row of PROTOCOL §3, no sockets, no sleeping."""

from __future__ import annotations

import pytest

from realtime_auth.errors import AuthError
from realtime_auth.session import AuthSession, Identity, Phase, Verdict
from realtime_auth.wire import CloseCode, ErrorCode


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


USER = object()
OTHER = object()


def session(mode: str, clock: Clock, timeout: float = 10) -> AuthSession:
    return AuthSession(mode, timeout, clock=clock)


def codes(verdict: Verdict) -> tuple[str | None, str | None, CloseCode | None]:
    error = verdict.error
    return (str(error.code) if error else None, error.message if error else None, verdict.close)


def test_public_mode_starts_with_the_public_role_and_no_deadline() -> None:
    auth = session("public", Clock())
    auth.start(None)
    assert auth.user is None
    assert auth.phase is Phase.PUBLIC
    assert auth.next_deadline() is None


def test_handshake_mode_waits_for_auth_until_the_timeout() -> None:
    clock = Clock()
    auth = session("handshake", clock, timeout=10)
    auth.start(None)
    assert auth.awaiting_handshake
    assert auth.next_deadline() == 1_010.0
    clock.now = 1_009.999
    assert auth.tick() == Verdict()
    clock.now = 1_010.0
    assert codes(auth.tick()) == ("AUTH_FAILED", "Authentication handshake failed.", CloseCode.UNAUTHORIZED)
    assert auth.closed


def test_strict_mode_cannot_start_without_a_url_identity() -> None:
    with pytest.raises(ValueError, match="strict"):
        session("strict", Clock()).start(None)


@pytest.mark.parametrize("mode", ["public", "handshake", "strict"])
def test_a_url_token_authenticates_in_every_mode_without_a_handshake_deadline(mode: str) -> None:
    auth = session(mode, Clock())
    auth.start(Identity(USER, expires_at=1_900.0))
    assert auth.user is USER
    assert not auth.awaiting_handshake
    assert auth.next_deadline() == 1_900.0


def test_a_failed_first_message_in_handshake_mode_closes_with_the_handshake_error() -> None:
    auth = session("handshake", Clock())
    auth.start(None)
    verdict = auth.fail(AuthError())
    assert codes(verdict) == ("AUTH_FAILED", "Authentication handshake failed.", CloseCode.UNAUTHORIZED)
    assert auth.user is None


@pytest.mark.parametrize("mode", ["handshake", "strict"])
def test_a_later_auth_failure_closes_4401_outside_public_mode(mode: str) -> None:
    auth = session(mode, Clock())
    auth.start(Identity(USER, expires_at=None))
    verdict = auth.fail(AuthError())
    assert codes(verdict) == ("AUTH_FAILED", "Authentication failed.", CloseCode.UNAUTHORIZED)
    assert auth.closed and auth.user is None


def test_a_later_auth_failure_in_public_mode_drops_to_the_public_role_and_stays_open() -> None:
    auth = session("public", Clock())
    auth.start(Identity(USER, expires_at=None))
    verdict = auth.fail(AuthError())
    assert codes(verdict) == ("AUTH_FAILED", "Authentication failed.", None)
    assert auth.user is None
    assert auth.phase is Phase.PUBLIC


def test_reauth_switches_the_user() -> None:
    auth = session("handshake", Clock())
    auth.start(Identity(USER, expires_at=2_000.0))
    auth.succeed(Identity(OTHER, expires_at=3_000.0))
    assert auth.user is OTHER
    assert auth.next_deadline() == 3_000.0


@pytest.mark.parametrize("mode", ["handshake", "strict"])
def test_expiry_then_no_reauth_times_out_and_closes(mode: str) -> None:
    clock = Clock()
    auth = session(mode, clock, timeout=10)
    auth.start(Identity(USER, expires_at=1_002.0))
    clock.now = 1_002.0
    assert codes(auth.tick()) == ("TOKEN_EXPIRED", "Token expired.", None)
    assert auth.user is None
    assert auth.phase is Phase.REAUTH
    assert auth.next_deadline() == 1_012.0
    clock.now = 1_012.0
    assert codes(auth.tick()) == ("AUTH_TIMEOUT", "Authentication timed out.", CloseCode.UNAUTHORIZED)
    assert auth.closed


def test_expiry_in_public_mode_times_out_without_closing() -> None:
    clock = Clock()
    auth = session("public", clock, timeout=5)
    auth.start(Identity(USER, expires_at=1_001.0))
    clock.now = 1_001.5
    assert codes(auth.tick()) == ("TOKEN_EXPIRED", "Token expired.", None)
    clock.now = 1_006.5
    assert codes(auth.tick()) == ("AUTH_TIMEOUT", "Authentication timed out.", None)
    assert auth.phase is Phase.PUBLIC
    assert auth.next_deadline() is None
    assert not auth.closed


def test_reauth_within_the_window_restores_the_session() -> None:
    clock = Clock()
    auth = session("handshake", clock, timeout=10)
    auth.start(Identity(USER, expires_at=1_001.0))
    clock.now = 1_001.0
    auth.tick()
    clock.now = 1_005.0
    auth.succeed(Identity(USER, expires_at=1_905.0))
    assert auth.user is USER
    assert auth.next_deadline() == 1_905.0
    clock.now = 1_011.0
    assert auth.tick() == Verdict()


def test_a_failed_reauth_in_public_mode_keeps_the_window_running() -> None:
    clock = Clock()
    auth = session("public", clock, timeout=10)
    auth.start(Identity(USER, expires_at=1_001.0))
    clock.now = 1_001.0
    auth.tick()
    assert codes(auth.fail(AuthError())) == ("AUTH_FAILED", "Authentication failed.", None)
    assert auth.next_deadline() == 1_011.0


def test_a_token_already_expired_at_success_expires_on_the_next_tick() -> None:
    clock = Clock()
    auth = session("handshake", clock)
    auth.start(Identity(USER, expires_at=999.0))
    assert auth.tick().error.code is ErrorCode.TOKEN_EXPIRED


def test_nothing_happens_after_close() -> None:
    auth = session("handshake", Clock())
    auth.start(None)
    auth.fail(AuthError())
    auth.succeed(Identity(USER, expires_at=None))
    assert auth.user is None
    assert auth.fail(AuthError()) == Verdict()
    assert auth.tick() == Verdict()


def test_expire_is_ignored_unless_authenticated() -> None:
    auth = session("public", Clock())
    auth.start(None)
    assert auth.expire() == Verdict()
    assert auth.phase is Phase.PUBLIC
