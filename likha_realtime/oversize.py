"""Oversized incoming messages at the transport: refused with the application's error and close 4413, never a reset.

autobahn (under daphne) enforces its size limits by dropping the TCP connection while the client is still sending:
the client sees a reset, never the error frame nor the close code. ``OversizeGuard`` (mixed into the server's
WebSocket protocol, ``likha_realtime.server``) replaces that: as soon as a message's announced frame lengths pass
``MESSAGE_MAX_BYTES``, it stops buffering the message and hands the application a stand-in of ``MESSAGE_MAX_BYTES +
1`` bytes, which every socket answers as any frame over the limit (``INVALID_PAYLOAD`` then 4413; GraphQL: 4413).
The rest of the message is read and discarded, so the client can finish sending and complete the close handshake;
a client that neither finishes nor answers the close is dropped after ``OVERSIZE_CLOSE_TIMEOUT`` seconds.
"""

from __future__ import annotations

from typing import Any, ClassVar

# Seconds a refused client has to finish sending its message and answer the close (autobahn's default is 1 s, too
# short for a few MiB on a busy machine or a slow link); only for connections that sent an oversized message.
OVERSIZE_CLOSE_TIMEOUT = 10.0


def message_limit() -> int:
    from likha_realtime.conf import realtime_settings

    return int(realtime_settings.MESSAGE_MAX_BYTES)


class OversizeGuard:
    """A mixin for autobahn's ``WebSocketServerProtocol`` (before it in the bases): bounded buffering per message.

    The attributes used (``message_data``, ``frame_data``, ``message_data_total_length``, ``message_is_binary``,
    ``utf8validateIncomingCurrentMessage``, ``closeHandshakeTimeout``, ``failedByMe``) are autobahn's own.
    """

    oversize_close_timeout: ClassVar[float] = OVERSIZE_CLOSE_TIMEOUT
    frame_data: Any
    message_data: Any
    _message_limit: int | None = None
    _discarding = False

    def message_limit(self) -> int:
        if self._message_limit is None:
            self._message_limit = message_limit()
        return self._message_limit

    def onMessageBegin(self, isBinary: bool) -> None:
        self._discarding = False
        super().onMessageBegin(isBinary)  # type: ignore[misc]

    def onMessageFrameBegin(self, length: int) -> None:
        if self._discarding:
            return
        super().onMessageFrameBegin(length)  # type: ignore[misc]  # adds length to message_data_total_length
        this: Any = self
        if not this.failedByMe and this.message_data_total_length > self.message_limit():
            self._refuse_message()

    def onMessageFrameData(self, payload: bytes) -> None:
        if not self._discarding:
            super().onMessageFrameData(payload)  # type: ignore[misc]

    def onMessageFrameEnd(self) -> None:
        if self._discarding:
            self.frame_data = None
            return
        super().onMessageFrameEnd()  # type: ignore[misc]

    def onMessageEnd(self) -> None:
        if self._discarding:
            self._discarding = False
            self.message_data = None
            return
        super().onMessageEnd()  # type: ignore[misc]

    def _refuse_message(self) -> None:
        """Stop buffering, hand the application the over-limit stand-in now (it answers while the client sends)."""
        this: Any = self
        self._discarding = True
        self.frame_data = None
        self.message_data = None
        this.utf8validateIncomingCurrentMessage = False  # the discarded rest is never decoded
        this.closeHandshakeTimeout = max(float(this.closeHandshakeTimeout or 0), self.oversize_close_timeout)
        this.onMessage(b" " * (self.message_limit() + 1), this.message_is_binary)
