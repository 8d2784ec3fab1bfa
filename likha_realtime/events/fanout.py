"""Per-process fan-out: the process channel in each collection's group, then in-process delivery.

An event crosses the channel layer once per server process (not once per subscriber: see docs/FANOUT.md for the
measurements) and lands in a bounded in-process queue; a worker hands it to the fair scheduler
(``events.scheduler``), whose delivery task serves this process's connections in turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
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
RESYNC_WAIT_SECONDS = 60.0  # longest a resync waits for its socket's re-read after a channel-layer failure
RESYNC_INTERVAL_SECONDS = 1.0  # between two rounds of resyncs: what is asked meanwhile goes in one round


Listener = Subscriber


class SequenceTracker:
    """Counts events lost between a publisher and this process, from the publisher's sequence numbers.

    A publisher numbers its events per collection, so ``source`` is the publisher and the collection: a process
    that hears only some collections sees no gap where the others' events were.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def seen(self, source: str, seq: int) -> int:
        """Record ``seq``; returns how many earlier events of that source never arrived."""
        last = self._last.get(source)
        self._last[source] = max(seq, last or 0)
        if last is None or seq <= last + 1:
            return 0
        return seq - last - 1

    def forget(self) -> None:
        """After a resync of every subscriber, what was lost before it no longer counts: start afresh."""
        self._last.clear()


def _layer_ready(listener: Any) -> asyncio.Event | None:
    """The ``layer_ready`` event of the socket of ``listener`` (a REST socket, or a GraphQL listener's socket)."""
    for holder in (listener, getattr(listener, "socket", None)):
        ready = getattr(holder, "layer_ready", None)
        if isinstance(ready, asyncio.Event):
            return ready
    return None


class Routes:
    """One collection's listeners by the rows whose events may concern them: those of any row, and those of some
    items (a listener's ``item_keys(collection)``; without that method, any row). An event goes to the first set and
    to the listeners of its own keys, so with thousands of item subscriptions an event costs the few listeners of its
    rows, not a check of every listener of the collection (the soak: 30 % of a busy process). A superset: the
    scheduler still asks each listener's subscriptions whether they want the event."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.any_row: set[Listener] = set()
        self.by_key: dict[str, set[Listener]] = defaultdict(set)
        self._keys: dict[Listener, frozenset[str] | None] = {}  # how each listener is routed now

    def route(self, listener: Listener) -> None:
        item_keys = getattr(listener, "item_keys", None)
        self.remove(listener)
        keys = None if item_keys is None else item_keys(self.collection)
        self._keys[listener] = keys
        if keys is None:
            self.any_row.add(listener)
            return
        for key in keys:
            self.by_key[key].add(listener)

    def remove(self, listener: Listener) -> None:
        if listener not in self._keys:
            return
        keys = self._keys.pop(listener)
        if keys is None:
            self.any_row.discard(listener)
            return
        for key in keys:
            members = self.by_key.get(key)
            if members is not None:
                members.discard(listener)
                if not members:
                    del self.by_key[key]

    def for_keys(self, key_strings: Iterable[str]) -> list[Listener]:
        found = set(self.any_row)
        for key in key_strings:
            found.update(self.by_key.get(key, ()))
        return list(found)


def _count_receive_failure() -> None:
    stats.add("receive_failures")


class Dispatcher:
    """This event loop's subscribers by collection, fed from the process channel through a bounded queue."""

    def __init__(self, channel: ProcessChannel) -> None:
        self.channel = channel
        self.listeners: dict[str, set[Listener]] = defaultdict(set)
        self.routes: dict[str, Routes] = {}  # by collection: the listeners by the rows they may hear of
        # Each event with when it arrived here (``time.monotonic()``): a subscription hears only what arrived after
        # its init read began (``Subscription.since``), which the init did not already show.
        self.queue: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue(QUEUE_SIZE)
        self.sequences = SequenceTracker()
        self.scheduler = FairScheduler()
        self._worker: asyncio.Task[None] | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._resync_pending: set[str] = set()  # collections whose subscribers are told to resync, soon
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_round_at = float("-inf")  # when the last round of resyncs started (the loop's clock)
        self._overflowed: set[str] = set()  # collections with events dropped since the queue last had room
        self._overflow_drops = 0
        channel.on(EVENT_MESSAGE, self._on_event)
        channel.on_recovered(self._after_outage)
        channel.on_failed(_count_receive_failure)

    async def add(self, collection: str, listener: Listener) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
            self._delivery = asyncio.get_running_loop().create_task(self.scheduler.run())
        # Registered before the join, which may wait (a round trip to the process channel's reading loop): an event
        # handled meanwhile reaches the new subscriber, and a listener discarded meanwhile stays out.
        self.listeners[collection].add(listener)
        self._routes(collection).route(listener)
        await self.channel.join(group_name(collection))

    def reroute(self, listener: Listener) -> None:
        """``listener``'s subscriptions changed: route it again in each collection it listens to."""
        for collection, listeners in self.listeners.items():
            if listener in listeners:
                self._routes(collection).route(listener)

    def _routes(self, collection: str) -> Routes:
        routes = self.routes.get(collection)
        if routes is None:
            routes = self.routes[collection] = Routes(collection)
        return routes

    def discard(self, collection: str, listener: Listener) -> None:
        self.listeners[collection].discard(listener)
        routes = self.routes.get(collection)
        if routes is not None:
            routes.remove(listener)
        self.scheduler.drop(listener)  # what was pending for it would keep a closed socket alive

    def _on_event(self, message: dict[str, Any]) -> None:
        stats.add("received")
        collection = str(message.get("collection", ""))
        publisher = message.get("publisher", "")
        lost = self.sequences.seen(f"{publisher}/{collection}", int(message.get("seq", 0)))
        if lost:
            stats.add("lost", lost)
            logger.warning("%d %s event(s) from publisher %s were lost in transit", lost, collection, publisher)
        if lost or message.get("lost"):  # a gap here, or the publisher dropped events while Redis was unreachable
            self.resync([collection])
        try:
            self.queue.put_nowait((message, time.monotonic()))
        except asyncio.QueueFull:
            stats.add("queue_dropped")
            self._overflow_drops += 1
            if not self._overflowed:  # one line per overflow, not one per dropped event
                logger.error(
                    "delivery queue full (%d): dropping events (first: a %s event on %s)",
                    QUEUE_SIZE,
                    message.get("action"),
                    collection,
                )
            self._overflowed.add(collection)
            return
        if self._overflowed:  # room again: the subscribers of what was dropped re-read
            logger.warning(
                "delivery queue has room again: %d event(s) were dropped on %s",
                self._overflow_drops,
                ", ".join(sorted(self._overflowed)),
            )
            self.resync(self._overflowed)
            self._overflowed, self._overflow_drops = set(), 0

    def _after_outage(self) -> None:
        """The process channel is back after a channel-layer failure: every subscriber may have missed events."""
        self.sequences.forget()
        self.resync([collection for collection, listeners in self.listeners.items() if listeners])

    def resync(self, collections: Iterable[str]) -> None:
        """Tell the subscribers of ``collections`` (soon: at once, or within ``RESYNC_INTERVAL_SECONDS`` of the last
        round; once per subscriber and collection however often this is called meanwhile) that they may have missed
        events: PROTOCOL §5 ``resync``."""
        self._resync_pending.update(collections)
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = asyncio.get_running_loop().create_task(self._send_resyncs())

    async def _send_resyncs(self) -> None:
        """Rounds of resyncs, one per ``RESYNC_INTERVAL_SECONDS`` at most: the first at once, then what was asked
        meanwhile together. A process behind its channel sees gap after gap; a round per gap told every
        subscriber again and again (the soak: 698,000 resync frames for 699 gaps), more load on a process behind."""
        loop = asyncio.get_running_loop()
        while self._resync_pending:
            wait = self._resync_round_at + RESYNC_INTERVAL_SECONDS - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._resync_round_at = loop.time()
            collections, self._resync_pending = self._resync_pending, set()
            for collection in sorted(collections):
                for listener in list(self.listeners.get(collection, ())):
                    ready = _layer_ready(listener)
                    if ready is not None and not ready.is_set():  # its socket re-reads its rights first
                        asyncio.get_running_loop().create_task(self._resync_when_ready(listener, collection, ready))
                        continue
                    await self._resync_one(listener, collection)

    async def _resync_when_ready(self, listener: Any, collection: str, ready: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):  # a socket that never gets there (closing): resync anyway
            await asyncio.wait_for(ready.wait(), RESYNC_WAIT_SECONDS)
        await self._resync_one(listener, collection)

    async def _resync_one(self, listener: Any, collection: str) -> None:
        resync = getattr(listener, "resync", None)
        if resync is None:
            return
        try:
            stats.add("resyncs", await resync(collection))
        except Exception:
            logger.exception("resync of a subscriber of %s failed", collection)

    async def _work(self) -> None:
        while True:
            message, received = await self.queue.get()
            try:
                self._schedule(message, received)
            except Exception:
                stats.add("delivery_errors")
                logger.exception(
                    "delivery of a %s event on %s failed", message.get("action"), message.get("collection")
                )

    def _schedule(self, message: dict[str, Any], received: float | None = None) -> None:
        """The event to each connection's queue (no database work here: matching and re-reads take turns)."""
        collection = registry.get(message.get("collection"))
        routes = self.routes.get(message.get("collection", ""))
        if collection is None or routes is None:
            return
        event = Event.from_message(message, collection.model, received=received)
        listeners = routes.for_keys(event.key_strings)
        if listeners:
            self.scheduler.add_event(event, listeners)

    def stop(self) -> None:
        for task in (self._worker, self._delivery, self._resync_task):
            if task is not None:
                task.cancel()


_dispatchers: PerLoop[Dispatcher] = PerLoop(lambda: Dispatcher(process_channel()))


def get_dispatcher() -> Dispatcher:
    """The dispatcher of the running event loop."""
    return _dispatchers.get()
