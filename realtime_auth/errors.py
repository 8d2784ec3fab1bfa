"""Authentication errors: each carries its wire code, default message and the close code it maps to."""

from __future__ import annotations

import math

from realtime_auth.wire import CloseCode, ErrorCode, RealtimeError


class AuthError(RealtimeError):
    """Credentials were missing, malformed or refused."""

    code = ErrorCode.AUTH_FAILED
    default_message = "Authentication failed."


class HandshakeFailed(AuthError):
    default_message = "Authentication handshake failed."
    close_code = CloseCode.UNAUTHORIZED


class TooManyAttempts(AuthError):
    code = ErrorCode.REQUESTS_EXCEEDED
    default_message = "Too many failed authentication attempts."
    close_code = CloseCode.TOO_MANY_REQUESTS


class LoginThrottled(AuthError):
    """A credential login refused by the login throttle (``realtime_auth.throttle``) before any credential was
    checked; ``wait`` is the seconds until the limit's window ends. No close of its own: the socket then does what
    its mode does for a failed auth (PROTOCOL §3), the HTTP views answer 429 with ``Retry-After``."""

    code = ErrorCode.REQUESTS_EXCEEDED

    def __init__(self, wait: float) -> None:
        self.wait = max(wait, 0.001)
        super().__init__(f"Too many login attempts, retry after {math.ceil(self.wait * 1000)}ms.")


class TokenExpired(AuthError):
    code = ErrorCode.TOKEN_EXPIRED
    default_message = "Token expired."


class AuthTimeout(AuthError):
    code = ErrorCode.AUTH_TIMEOUT
    default_message = "Authentication timed out."


class InvalidCredentials(AuthError):
    """Email/password refused (unknown user, wrong password, inactive user)."""

    http_code = "INVALID_CREDENTIALS"
    http_message = "Invalid user credentials."


class InvalidToken(AuthError):
    """A token that is malformed, badly signed, expired, blacklisted, reused, or whose user is gone/inactive."""

    http_code = "INVALID_TOKEN"
    http_message = "Invalid token."
