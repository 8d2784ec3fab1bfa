"""The errors of the realtime sockets beyond authentication (PROTOCOL §4), each with its code and close code."""

from __future__ import annotations

from realtime_auth.wire import CloseCode, ErrorCode, RealtimeError


class InvalidPayload(RealtimeError):
    code = ErrorCode.INVALID_PAYLOAD
    default_message = "Invalid payload."


class Forbidden(RealtimeError):
    code = ErrorCode.FORBIDDEN
    default_message = "You don't have permission to access this."


class InvalidQuery(RealtimeError):
    code = ErrorCode.INVALID_QUERY
    default_message = "Invalid query."


class RecordNotUnique(RealtimeError):
    code = ErrorCode.RECORD_NOT_UNIQUE
    default_message = "Value has to be unique."


class MessageTooLarge(InvalidPayload):
    default_message = "Message too large."
    close_code = CloseCode.MESSAGE_TOO_LARGE


class TooManyConnections(RealtimeError):
    code = ErrorCode.REQUESTS_EXCEEDED
    default_message = "Too many connections."
    close_code = CloseCode.TOO_MANY_REQUESTS


class TooManyUserConnections(RealtimeError):
    code = ErrorCode.REQUESTS_EXCEEDED
    default_message = "Too many connections for this user."
    close_code = CloseCode.TOO_MANY_REQUESTS


class TooManySubscriptions(RealtimeError):
    """Over ``SUBSCRIPTIONS_MAX``: this subscription is refused, the others and the socket stay."""

    code = ErrorCode.REQUESTS_EXCEEDED

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many subscriptions: at most {limit} per connection; unsubscribe first.")
