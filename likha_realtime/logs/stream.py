"""Per-process delivery of log lines to this process's logs sockets, each through a bounded buffer of its own.

Lines of this process arrive from the handler's thread (``deliver_threadsafe``); lines of other processes arrive
on one channel per process in the ``likha.logs`` group. Either way ``deliver`` only enqueues (never awaits a socket),
so a subscriber that never reads costs the others nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)  # under likha_realtime.logs: never re-published by the handler

GROUP = "likha.logs"
MESSAGE_TYPE = "logs.lines"
TAP_SIZE = 10_000  # lines buffered per subscriber (a burst can land in one loop turn) before dropping
GROUP_REFRESH_SECONDS = 3600  # channels-redis forgets group members after group_expiry (1 day by default)

Line = tuple[int, str]  # (wire level, encoded frame)


def crosses_processes(layer: Any) -> bool:
    """Whether ``layer`` reaches other server processes (the in-memory layer is this process only)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


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
    """This event loop's subscribers, and (on a cross-process layer) its channel in the logs group."""

    def __init__(self, layer: Any, node_id: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.layer = layer
        self.node_id = node_id
        self.taps: set[LogTap] = set()
        self.channel: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._join_lock = asyncio.Lock()

    async def add(self, tap: LogTap) -> None:
        self.taps.add(tap)
        await self._join()

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

    async def _join(self) -> None:
        if not crosses_processes(self.layer):
            return
        async with self._join_lock:
            if self.channel is not None:
                return
            # The default "specific" prefix: channels-redis reads all of a process's specific channels from one
            # list under one lock; a second prefix would make the two readers block each other (see fanout.py).
            self.channel = await self.layer.new_channel()
            await self.layer.group_add(GROUP, self.channel)
            self._tasks = [self.loop.create_task(self._receive()), self.loop.create_task(self._refresh())]

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("logs stream: receiving from the channel layer failed; retrying")
                await asyncio.sleep(1)
                continue
            if message.get("type") != MESSAGE_TYPE or message.get("node") == self.node_id:
                continue  # this process's own lines were delivered directly
            self.deliver((int(level), str(text)) for level, text in message.get("lines", ()))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            await self.layer.group_add(GROUP, self.channel)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


_streams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LogStream] = weakref.WeakKeyDictionary()
_streams_lock = threading.Lock()


def get_stream() -> LogStream:
    """The stream of the running event loop (one per server process; tests run several loops)."""
    from likha_realtime.logs.handler import NODE_ID

    loop = asyncio.get_running_loop()
    with _streams_lock:
        stream = _streams.get(loop)
        if stream is None:
            stream = _streams[loop] = LogStream(get_channel_layer(), NODE_ID)
        return stream


def local_streams() -> list[LogStream]:
    with _streams_lock:
        return list(_streams.values())
