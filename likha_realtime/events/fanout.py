"""Per-process fan-out: the process channel in each collection's group, then in-process delivery.

An event crosses the channel layer once per server process (not once per subscriber: see docs/FANOUT.md for the
measurements) and lands in a bounded in-process queue; a worker hands it to the fair scheduler
(``events.scheduler``), whose delivery task serves this process's connections in turns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from likha_realtime.access.collections import registry
from likha_realtime.events.deliver import Subscriber
from likha_realtime.events.model import Event
from likha_realtime.events.scheduler import FairScheduler
from likha_realtime.events.stats import stats
from likha_realtime.events.transport import EVENT_MESSAGE, group_name
from likha_realtime.node import PerLoop, ProcessChannel, process_channel

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


Listener = Subscriber


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
    """This event loop's subscribers by collection, fed from the process channel through a bounded queue."""

    def __init__(self, channel: ProcessChannel) -> None:
        self.channel = channel
        self.listeners: dict[str, set[Listener]] = defaultdict(set)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.sequences = SequenceTracker()
        self.scheduler = FairScheduler()
        self._worker: asyncio.Task[None] | None = None
        self._delivery: asyncio.Task[None] | None = None
        channel.on(EVENT_MESSAGE, self._on_event)

    async def add(self, collection: str, listener: Listener) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
            self._delivery = asyncio.get_running_loop().create_task(self.scheduler.run())
        await self.channel.join(group_name(collection))
        self.listeners[collection].add(listener)

    def discard(self, collection: str, listener: Listener) -> None:
        self.listeners[collection].discard(listener)
        self.scheduler.drop(listener)  # what was pending for it would keep a closed socket alive

    def _on_event(self, message: dict[str, Any]) -> None:
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
                self._schedule(message)
            except Exception:
                stats.delivery_errors += 1
                logger.exception(
                    "delivery of a %s event on %s failed", message.get("action"), message.get("collection")
                )

    def _schedule(self, message: dict[str, Any]) -> None:
        """The event to each connection's queue (no database work here: matching and re-reads take turns)."""
        collection = registry.get(message.get("collection"))
        listeners = list(self.listeners.get(message.get("collection", ""), ()))
        if collection is None or not listeners:
            return
        self.scheduler.add_event(Event.from_message(message, collection.model), listeners)

    def stop(self) -> None:
        for task in (self._worker, self._delivery):
            if task is not None:
                task.cancel()


_dispatchers: PerLoop[Dispatcher] = PerLoop(lambda: Dispatcher(process_channel()))


def get_dispatcher() -> Dispatcher:
    """The dispatcher of the running event loop."""
    return _dispatchers.get()
