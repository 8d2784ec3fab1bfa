"""Per-process fan-out: one channel per server process in each collection's group, then in-process delivery.

An event crosses the channel layer once per server process (not once per subscriber: see docs/FANOUT.md for the
measurements), lands in a bounded in-process queue, and one worker delivers it to this process's subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from typing import Any

from channels.layers import get_channel_layer

from likha_realtime.collections import registry
from likha_realtime.events.broadcast import EVENT_MESSAGE, group_name
from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
GROUP_REFRESH_SECONDS = 3600  # channels-redis forgets group members after group_expiry (1 day by default)


Listener = Any  # a Subscriber (likha_realtime.events.deliver)


class SequenceTracker:
    """Counts events lost between a publisher and this process, from the publisher's sequence numbers."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def seen(self, publisher: str, seq: int) -> int:
        """Record ``seq``; returns how many earlier events of that publisher never arrived."""
        last = self._last.get(publisher)
        self._last[publisher] = max(seq, last or 0)
        if last is None or seq <= last + 1:
            return 0
        return seq - last - 1


class Dispatcher:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.listeners: dict[str, set[Listener]] = defaultdict(set)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.sequences = SequenceTracker()
        self._joined: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._start_lock = asyncio.Lock()

    async def add(self, collection: str, listener: Listener) -> None:
        await self._start()
        if collection not in self._joined:
            await self.layer.group_add(group_name(collection), self.channel)
            self._joined.add(collection)
        self.listeners[collection].add(listener)

    def discard(self, collection: str, listener: Listener) -> None:
        self.listeners[collection].discard(listener)

    async def _start(self) -> None:
        async with self._start_lock:
            if self.channel is not None:
                return
            # The default "specific" prefix matters: channels-redis reads all of a process's specific channels
            # from one Redis list under one lock; a second prefix would make the two readers block each other.
            self.channel = await self.layer.new_channel()
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._receive()),
                loop.create_task(self._work()),
                loop.create_task(self._refresh()),
            ]

    async def _receive(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") != EVENT_MESSAGE:
                continue
            stats.received += 1
            lost = self.sequences.seen(message.get("publisher", ""), int(message.get("seq", 0)))
            if lost:
                stats.lost += lost
                logger.warning("%d event(s) from publisher %s were lost in transit", lost, message.get("publisher"))
            try:
                self.queue.put_nowait(message)
            except asyncio.QueueFull:
                stats.queue_dropped += 1
                logger.error(
                    "delivery queue full (%d): dropped a %s event on %s",
                    QUEUE_SIZE,
                    message.get("action"),
                    message.get("collection"),
                )

    async def _work(self) -> None:
        while True:
            message = await self.queue.get()
            try:
                await self._deliver(message)
            except Exception:
                stats.delivery_errors += 1
                logger.exception(
                    "delivery of a %s event on %s failed", message.get("action"), message.get("collection")
                )

    async def _deliver(self, message: dict[str, Any]) -> None:
        collection = registry.get(message.get("collection"))
        listeners = list(self.listeners.get(message.get("collection", ""), ()))
        if collection is None or not listeners:
            return
        event = Event.from_message(message, collection.model)
        from likha_realtime.events.deliver import deliver

        await deliver(event, collection, listeners)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            for collection in list(self._joined):
                await self.layer.group_add(group_name(collection), self.channel)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


_dispatchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dispatcher] = weakref.WeakKeyDictionary()


def get_dispatcher() -> Dispatcher:
    """The dispatcher of the running event loop (one per server process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    dispatcher = _dispatchers.get(loop)
    if dispatcher is None:
        dispatcher = _dispatchers[loop] = Dispatcher(get_channel_layer())
    return dispatcher
