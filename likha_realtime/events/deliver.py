"""Delivering one event to subscribers: one read per batch of equal reads (``sharing``), shared by its members.

A batch's read applies its plan to the rows as their write committed them, which the event carries
(``access.reads.read_committed``): no database work, and every frame shows its own write's state. Where the plan
cannot be applied in Python (a rule ``evaluate`` cannot answer, a row the event does not carry, ...), the batch's rows
are re-read from the database, once for the batch; ``stats`` counts both.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Hashable
from typing import Any, Protocol, cast

from channels.db import database_sync_to_async

from likha_realtime import metrics
from likha_realtime.access.subscriptions import Subscription, committed_payload, event_payload
from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats
from likha_realtime.query import Unevaluable
from likha_realtime.wire.codec import encode_json
from likha_realtime.wire.prepared import PreparedFrames

logger = logging.getLogger(__name__)

BatchKey = tuple[Hashable, tuple[Any, ...]]


class Subscriber(Protocol):
    """A holder of subscriptions: the REST consumer, or one GraphQL subscription (``graphql.schema.Listener``).

    A subscriber that is one of several on a socket names that socket in a ``connection`` attribute: deliveries
    take turns per connection (``events.scheduler``). Without one, the subscriber is its own connection.
    """

    def subscriptions_for(self, collection: str) -> list[Subscription]: ...

    async def receive_event(self, subscription: Subscription, action: str, payload: Any, data_json: str) -> None:
        """Deliver one event's ``payload`` (rows, or keys for a delete; ``data_json`` is it encoded)."""


def batches(event: Event, subscribers: list[Any]) -> dict[BatchKey, list[tuple[Any, Subscription]]]:
    """Subscriptions that hear ``event`` grouped by (batch key, the keys they hear of): one re-read per group."""
    grouped: dict[BatchKey, list[tuple[Any, Subscription]]] = defaultdict(list)
    for subscriber in subscribers:
        for subscription in subscriber.subscriptions_for(event.collection):
            if not subscription.wants(event.action, event.key_strings) or subscription.heard_before(event.received):
                continue
            keys = heard_keys(subscription, event)
            if keys:
                grouped[(subscription.batch_key, keys)].append((subscriber, subscription))
    return grouped


def heard_keys(subscription: Subscription, event: Event) -> tuple[Any, ...]:
    """The rows of ``event`` this subscription hears of: for an update, those whose changed fields concern it."""
    if event.action != "update" or not event.changed:
        return event.keys
    return tuple(key for key, changed in zip(event.keys, event.changed, strict=True) if subscription.hears(changed))


@database_sync_to_async
def _payload(subscription: Subscription, event: Event, keys: tuple[Any, ...]) -> Any:
    return event_payload(subscription, event.action, keys, states_of(event, keys))


def states_of(event: Event, keys: tuple[Any, ...]) -> tuple[Any, ...]:
    """The snapshots of the rows ``keys`` (some of the event's), aligned with them; empty when it carries none."""
    if not event.snapshots:
        return ()
    if keys == event.keys:
        return event.snapshots
    states = dict(zip(event.keys, event.snapshots, strict=True))
    return tuple(states[key] for key in keys)


Outcome = tuple[Any, str] | None  # (payload, its JSON) or nothing to send


NOT_YET = object()  # ``SharedRead.now()``: only the database can answer (``outcome()``)


class SharedRead:
    """One batch's read and encoding: done once, by the first of its members to be served, and kept for the
    others for as long as a delivery still refers to it (so until the last member has taken it)."""

    __slots__ = ("_future", "_needs_database", "cache", "event", "keys", "prepared", "subscription")

    def __init__(self, event: Event, subscription: Subscription, keys: tuple[Any, ...]) -> None:
        self.event = event
        self.subscription = subscription  # any member's: the batch key makes their reads the same read
        self.keys = keys
        self._future: asyncio.Future[Outcome] | None = None
        self._needs_database = False
        self.prepared = PreparedFrames()  # the batch's frames, framed once for all its members' connections
        self.cache: dict[Any, str] = {}  # what subscribers make of the outcome once for all (GraphQL's payloads)

    @property
    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def now(self) -> Outcome | object:
        """The outcome without waiting: already read, or made now from the committed rows; ``NOT_YET`` when only the
        database can answer (then ``outcome()`` reads it)."""
        if self._future is not None and self._future.cancelled():
            self._future = None  # its reader was cancelled (the dispatcher stopping): read again
        if self._future is not None:
            return self._future.result() if self._future.done() else NOT_YET
        try:
            payload = self._from_committed_rows()
            if payload is NOT_YET:
                return NOT_YET
            outcome = None if payload is None else (payload, encode_json(payload))
        except Exception:  # as in outcome(): this batch misses the event, the others are not held up
            stats.add("delivery_errors")
            logger.exception("reading a %s event on %s failed", self.event.action, self.event.collection)
            outcome = None
        self._future = asyncio.get_running_loop().create_future()
        self._future.set_result(outcome)
        return outcome

    async def outcome(self) -> Outcome:
        if self._future is not None and self._future.cancelled():
            self._future = None
        if self._future is not None:  # read for another member already (or being read for one)
            if self._future.done():
                return self._future.result()
            return await asyncio.shield(self._future)
        self._future = future = asyncio.get_running_loop().create_future()
        try:
            payload = await self._read()
            outcome = None if payload is None else (payload, encode_json(payload))  # once per batch
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception:  # the batch misses this event; the others are not held up
            stats.add("delivery_errors")
            logger.exception("re-reading a %s event on %s failed", self.event.action, self.event.collection)
            outcome = None
        future.set_result(outcome)
        return outcome

    async def _read(self) -> Any:
        """The batch's payload: from the rows as their write committed them where the plan can be applied to them
        in Python (no database work, and the state of this event's own write), else re-read from the database."""
        payload = self._from_committed_rows()
        if payload is NOT_YET:
            stats.add("rereads")
            return await _payload(self.subscription, self.event, self.keys)
        return payload

    def _from_committed_rows(self) -> Any:
        """The payload made from the event's rows (counted), or ``NOT_YET`` when only the database can answer (known
        from then on: the batch does not try again)."""
        if self._needs_database:
            return NOT_YET
        try:
            payload = committed_payload(
                self.subscription, self.event.action, self.keys, states_of(self.event, self.keys)
            )
        except Unevaluable:
            self._needs_database = True
            return NOT_YET
        stats.add("committed_reads")
        return payload


class Delivery:
    """One subscription's frame for one event, once its batch's read is done."""

    __slots__ = ("read", "subscriber", "subscription")

    def __init__(self, read: SharedRead, subscriber: Any, subscription: Subscription) -> None:
        self.read = read
        self.subscriber = subscriber
        self.subscription = subscription

    def run_now(self) -> bool:
        """Deliver without waiting where nothing has to wait (the read needs no database, the subscriber can send at
        once: ``receive_event_now``); ``False`` when it must take its turn (``run``)."""
        outcome = self.read.now()
        if outcome is NOT_YET:
            return False
        if outcome is None:
            return True
        receive_now = getattr(self.subscriber, "receive_event_now", None)
        if receive_now is None:
            return False
        payload, data_json = cast(tuple[Any, str], outcome)
        event = self.read.event
        try:
            sent = receive_now(self.subscription, event.action, payload, data_json, self.read)
        except Exception:  # one broken socket must not starve the others
            stats.add("delivery_errors")
            logger.exception("could not send a %s frame on %s", event.action, event.collection)
            return True
        if sent is None:
            return False
        if sent:
            frame_sent(event)
            stats.add("fast_lane_deliveries")
        return True

    async def run(self) -> None:
        outcome = await self.read.outcome()
        if outcome is None:
            return
        payload, data_json = outcome
        event = self.read.event
        try:
            await self.subscriber.receive_event(self.subscription, event.action, payload, data_json)
        except Exception:  # one broken socket must not starve the others
            stats.add("delivery_errors")
            logger.exception("could not send a %s frame on %s", event.action, event.collection)
            return
        frame_sent(event)


def frame_sent(event: Event) -> None:
    """One subscription frame of ``event`` was written to a socket: counted, and its commit-to-send time metered."""
    stats.frames_sent += 1  # per frame: the Prometheus side is batched by the meter
    metrics.frames.sent(event, event.published)


class EventReads:
    """The shared reads of one event, by batch: subscribers served at different times find a batch's read done."""

    __slots__ = ("event", "reads")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.reads: dict[BatchKey, SharedRead] = {}

    def release_prepared(self) -> None:
        """The fast lane's pass is over: its prepared frames and encodings are not kept for the turns that follow
        (they send through ``receive_event``, which prepares nothing), however long an entry keeps this event."""
        for read in self.reads.values():
            read.prepared = PreparedFrames()
            read.cache.clear()

    def deliveries(self, subscribers: list[Any]) -> list[Delivery]:
        """The frames ``subscribers`` get for this event, in batch order (sync: no database work)."""
        result: list[Delivery] = []
        for key, members in batches(self.event, subscribers).items():
            read = self.reads.get(key)
            if read is None:
                read = self.reads[key] = SharedRead(self.event, members[0][1], key[1])
            result.extend(Delivery(read, subscriber, subscription) for subscriber, subscription in members)
        return result
