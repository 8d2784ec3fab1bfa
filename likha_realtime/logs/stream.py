"""Per-process delivery of log lines to this process's logs sockets, each through a bounded buffer of its own.

Lines of this process arrive from the handler's thread (``deliver_threadsafe``); lines of other processes arrive
on the process channel (``likha_realtime.node``) in the ``likha.logs`` group. Either way ``deliver`` only enqueues
(never awaits a socket), so a subscriber that never reads costs the others nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from likha_realtime.node import NODE_ID, PerLoop, ProcessChannel, process_channel

logger = logging.getLogger(__name__)  # under likha_realtime.logs: never re-published by the handler

GROUP = "likha.logs"
MESSAGE_TYPE = "logs.lines"
TAP_SIZE = 10_000  # lines buffered per subscriber (a burst can land in one loop turn) before dropping

Line = tuple[int, str]  # (wire level, encoded frame)


class LogTap:
    """One subscriber: lines at ``level`` and above, buffered (bounded) and written by its own task."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]], level: int, size: int | None = None) -> None:
        self.level = level
        self.dropped = 0
        self.queue: asyncio.Queue[str] = asyncio.Queue(TAP_SIZE if size is None else size)
        self._task = asyncio.get_running_loop().create_task(self._pump(send_text))

    def offer(self, level: int, text: str) -> None:
        if level < self.level:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _pump(self, send_text: Callable[[str], Awaitable[None]]) -> None:
        while True:
            await send_text(await self.queue.get())

    def close(self) -> None:
        self._task.cancel()
        if self.dropped:
            logger.warning("logs socket closed after %d line(s) were dropped for it (slow reader)", self.dropped)


class LogStream:
    """This event loop's subscribers; on a cross-process layer, the process channel joins the logs group for them."""

    def __init__(self, channel: ProcessChannel, node_id: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.channel = channel
        self.node_id = node_id
        self.taps: set[LogTap] = set()
        channel.on(MESSAGE_TYPE, self._on_lines)

    async def add(self, tap: LogTap) -> None:
        self.taps.add(tap)
        if self.channel.crosses_processes:
            await self.channel.join(GROUP)

    def discard(self, tap: LogTap) -> None:
        self.taps.discard(tap)

    def deliver(self, lines: Iterable[Line]) -> None:
        taps = list(self.taps)
        for level, text in lines:
            for tap in taps:
                tap.offer(level, text)

    def deliver_threadsafe(self, lines: list[Line]) -> None:
        """From another thread: deliver on this stream's loop (nothing when that loop is gone)."""
        if not self.taps:
            return
        try:
            self.loop.call_soon_threadsafe(self.deliver, lines)
        except RuntimeError:  # loop closed
            self.taps.clear()

    def _on_lines(self, message: dict[str, Any]) -> None:
        if message.get("node") == self.node_id:
            return  # this process's own lines were delivered directly
        self.deliver((int(level), str(text)) for level, text in message.get("lines", ()))


_streams: PerLoop[LogStream] = PerLoop(lambda: LogStream(process_channel(), NODE_ID))


def get_stream() -> LogStream:
    """The stream of the running event loop."""
    return _streams.get()


def local_streams() -> list[LogStream]:
    """Every event loop's stream in this process (read from the log handler's thread)."""
    return _streams.values()
