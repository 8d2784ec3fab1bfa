"""Slow readers (PROTOCOL §4): the bytes a socket may have waiting for a client that does not read are bounded.

Two places hold such bytes, each bounded by ``SEND_BUFFER_MAX_BYTES`` and each closing the socket 4429 "Too Many
Requests" when it would go over, with one log line and the ``slow_readers_closed`` counter (``/server/info``):

* the transport (:class:`SendBuffer`, kept by ``likha_realtime.server``'s WebSocket protocol): Twisted tells its
  producer when its write buffer is full (``pauseProducing``, over 64 KiB) and when it is empty again
  (``resumeProducing``); the bytes written in between are counted, and an application message that would take
  them over the limit is not sent: the socket is closed instead;
* the consumers' own queues (:class:`Backlog`): event frames a REST socket holds while its auth lock is held, and
  the events a GraphQL socket's subscriptions have not turned into messages yet.
"""

from __future__ import annotations

import logging
from typing import Any

from realtime_auth.wire import CloseCode

logger = logging.getLogger(__name__)

CLOSE_CODE = CloseCode.TOO_MANY_REQUESTS


def send_buffer_limit() -> int:
    """The ``SEND_BUFFER_MAX_BYTES`` setting."""
    from likha_realtime.conf import realtime_settings

    return int(realtime_settings.SEND_BUFFER_MAX_BYTES)


def text_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (without encoding it when it is ASCII, as JSON frames mostly are)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))


class SendBuffer:
    """Bytes written to a transport while it reported its write buffer full (a streaming producer's view of it).

    ``pause()`` and ``resume()`` follow the transport's ``pauseProducing`` / ``resumeProducing``; ``written(n)``
    counts what was written while paused (the write that filled the buffer is not counted: it was accepted while
    nothing waited). ``admits(n)``: may a message of ``n`` more bytes be written? ``overflowed`` stays set once a
    message was refused: nothing more is sent on that socket.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.paused = False
        self.pending = 0
        self.overflowed = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """The transport's buffer is empty again: nothing waits."""
        self.paused = False
        self.pending = 0

    def written(self, size: int, *, while_paused: bool) -> None:
        """``size`` bytes went to the transport; ``while_paused``: it was already full before they did."""
        if while_paused:
            self.pending += size

    @property
    def over(self) -> bool:
        """More than the limit is waiting (written while paused, e.g. control frames the peer asked for)."""
        return self.pending > self.limit

    def admits(self, size: int) -> bool:
        """Whether a message of ``size`` bytes may be written now; ``False`` marks the buffer overflowed."""
        if self.overflowed:
            return False
        if self.paused and self.pending + size > self.limit:
            self.overflowed = True
            return False
        return True


class Backlog:
    """Bytes of frames a connection holds in its own queue until they can be sent.

    ``add(n)`` admits a frame while the total stays within the limit, and always when nothing is held (a single
    large frame passes, as on the transport); ``False`` means the socket must be closed as a slow reader.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = send_buffer_limit() if limit is None else limit
        self.size = 0

    def add(self, size: int) -> bool:
        if self.size and self.size + size > self.limit:
            return False
        self.size += size
        return True

    def remove(self, size: int) -> None:
        self.size = max(0, self.size - size)

    def clear(self) -> None:
        self.size = 0


def record_slow_reader(where: str, waiting: int, limit: int, peer: str | None = None) -> None:
    """Count and log one slow-reader close (no frame content, no credentials: sizes and the peer's address)."""
    # Imported here: the server imports this module before Django is set up (events imports the capture path).
    from likha_realtime.events.stats import stats

    stats.add("slow_readers_closed")
    logger.warning(
        "slow reader closed %d (%s): %d bytes waiting would exceed SEND_BUFFER_MAX_BYTES=%d%s",
        int(CLOSE_CODE),
        where,
        waiting,
        limit,
        f" (client {peer})" if peer else "",
    )


async def close_slow_reader(socket: Any, where: str, waiting: int, limit: int) -> None:
    """Close a consumer whose own queue overflowed: 4429 "Too Many Requests", counted and logged once.

    No error frame precedes the close: the client is not reading what is already waiting for it.
    """
    if getattr(socket, "_closing", False):
        return
    record_slow_reader(f"{socket.socket} socket, {where}", waiting, limit)
    await socket.close_with(CLOSE_CODE)
