"""The wire kernel shared by every socket: close codes, error codes, the coded error base and the error envelope.

It imports nothing of either app; ``realtime_auth`` and ``likha_realtime`` both build on it.
"""

from __future__ import annotations

import math
from enum import IntEnum, StrEnum
from typing import Any

Uid = str | int | float | None


class CloseCode(IntEnum):
    """WebSocket close codes of PROTOCOL §4; each closes with its ``reason``."""

    NORMAL = 1000
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    HEARTBEAT_TIMEOUT = 4408
    MESSAGE_TOO_LARGE = 4413
    TOO_MANY_REQUESTS = 4429

    @property
    def reason(self) -> str:
        return _REASONS[self]


_REASONS = {
    CloseCode.NORMAL: "",
    CloseCode.BAD_REQUEST: "Bad Request",
    CloseCode.UNAUTHORIZED: "Unauthorized",
    CloseCode.FORBIDDEN: "Forbidden",
    CloseCode.HEARTBEAT_TIMEOUT: "Heartbeat Timeout",
    CloseCode.MESSAGE_TOO_LARGE: "Message Too Large",
    CloseCode.TOO_MANY_REQUESTS: "Too Many Requests",
}


class ErrorCode(StrEnum):
    """Every error code of PROTOCOL §4 (the wire's vocabulary; the errors themselves live with their layer)."""

    AUTH_FAILED = "AUTH_FAILED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    AUTH_TIMEOUT = "AUTH_TIMEOUT"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    INVALID_COLLECTION = "INVALID_COLLECTION"
    INVALID_QUERY = "INVALID_QUERY"
    FORBIDDEN = "FORBIDDEN"
    RECORD_NOT_UNIQUE = "RECORD_NOT_UNIQUE"
    REQUESTS_EXCEEDED = "REQUESTS_EXCEEDED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL = "INTERNAL"


class RealtimeError(Exception):
    """An error that is answered with the error envelope; ``close_code`` set means the socket closes after it."""

    code: ErrorCode = ErrorCode.INTERNAL
    default_message = "An unexpected error occurred."
    close_code: CloseCode | None = None

    def __init__(self, message: str | None = None, *, close_code: CloseCode | None = None) -> None:
        self.message = message or self.default_message
        if close_code is not None:
            self.close_code = close_code
        super().__init__(self.message)


def error_frame(context: str, error: RealtimeError, uid: Uid = None) -> dict[str, Any]:
    """The error envelope of PROTOCOL §4: ``type``, ``status``, ``error``, then ``uid`` when one was sent."""
    frame: dict[str, Any] = {
        "type": context,
        "status": "error",
        "error": {"code": str(error.code), "message": error.message},
    }
    if uid is not None:
        frame["uid"] = uid
    return frame


def with_uid(frame: dict[str, Any], uid: Uid) -> dict[str, Any]:
    """``frame`` with ``uid`` appended last (key order matters to Directus clients), when one was sent."""
    if uid is not None:
        frame["uid"] = uid
    return frame


def valid_uid(value: Any) -> bool:
    """uids are strings or finite numbers (not booleans); strings carry at most 256 characters."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 256
