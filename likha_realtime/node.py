"""This server process on the channel layer: its node id and its one channel, shared by event fan-out and logs.

Every cross-process message this process receives (events, log lines of other processes) arrives on one channel,
joined to the groups that its users need, and is routed by ``type`` to the handler registered for it. See
docs/FANOUT.md for why one channel per process, not one per socket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

NODE_ID = uuid.uuid4().hex  # this server process (the "uid" of its log lines)
GROUP_REFRESH_SECONDS = 3600  # channels-redis forgets group members after group_expiry (1 day by default)
RECEIVE_RETRY_SECONDS = 1.0  # after the channel layer failed (Redis unreachable), try again this much later

MessageHandler = Callable[[dict[str, Any]], None]
T = TypeVar("T")


def crosses_processes(layer: Any) -> bool:
    """Whether ``layer`` reaches other server processes (the in-memory layer is this process only)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class ProcessChannel:
    """One event loop's channel: ``on(type, handler)`` routes messages, ``join(group)`` adds the channel to a group.

    Handlers run on the loop and must not block (they enqueue). The channel is created on the first ``join``;
    its groups are re-joined every ``GROUP_REFRESH_SECONDS`` so that a long-lived process never drops out.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.name: str | None = None
        self.groups: set[str] = set()
        self.handlers: dict[str, MessageHandler] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    @property
    def crosses_processes(self) -> bool:
        return crosses_processes(self.layer)

    def on(self, message_type: str, handler: MessageHandler) -> None:
        self.handlers[message_type] = handler

    async def join(self, group: str) -> None:
        async with self._lock:
            if self.name is None:
                # The default "specific" prefix matters: channels-redis reads all of a process's specific channels
                # from one Redis list under one lock; a second prefix would make two readers block each other.
                self.name = await self.layer.new_channel()
                loop = asyncio.get_running_loop()
                self._tasks = [loop.create_task(self._receive()), loop.create_task(self._refresh())]
            if group not in self.groups:
                await self.layer.group_add(group, self.name)
                self.groups.add(group)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("process channel: receiving from the channel layer failed; retrying")
                await asyncio.sleep(RECEIVE_RETRY_SECONDS)
                continue
            handler = self.handlers.get(message.get("type", ""))
            if handler is None:
                continue
            try:
                handler(message)
            except Exception:  # one malformed message must not stop this process's channel
                logger.exception("process channel: the handler of a %r message failed", message.get("type"))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            for group in list(self.groups):
                try:
                    await self.layer.group_add(group, self.name)
                except Exception:
                    logger.exception("process channel: could not refresh group %s", group)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


class PerLoop(Generic[T]):
    """One ``T`` per running event loop: one per server process, several in tests (each test has its own loop).

    Made on first use by ``factory`` inside the loop; forgotten with the loop. ``values()`` may be read from
    another thread (the log handler's).
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            value = self._by_loop.get(loop)
            if value is None:
                value = self._by_loop[loop] = self._factory()
            return value

    def values(self) -> list[T]:
        with self._lock:
            return list(self._by_loop.values())


_channels: PerLoop[ProcessChannel] = PerLoop(lambda: ProcessChannel(get_channel_layer()))


def process_channel() -> ProcessChannel:
    """The channel of the running event loop."""
    return _channels.get()
