"""Fair delivery: each connection's pending deliveries wait in a queue of its own, and connections take turns.

The cost of a connection's subscriptions falls on that connection. Connections with work are served round-robin,
one entry per turn: an event's arrival is matched against the connection's subscriptions on its turn (the matching
costs that connection's turn), then each of its deliveries (one re-read, unless the batch's read was already done
for someone else: ``deliver.SharedRead``) takes a turn. So another subscriber's frame waits for at most one
delivery of each other busy connection, however many subscriptions those hold, and a later event's deliveries do
not wait for an earlier event's long tail on some other connection. A connection's own entries are served in
order, one at a time: its frames keep the order of events. See docs/FANOUT.md ("Fair delivery").

Memory is bounded: over ``FANOUT_BACKLOG`` pending entries in the process, the connection with the most loses its
queue; each of its subscriptions that missed an event gets a resync instead (PROTOCOL §5), and the loss is counted
(``stats.deliveries_dropped``) and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from likha_realtime.access.subscriptions import Subscription
from likha_realtime.conf import realtime_settings
from likha_realtime.events.deliver import Delivery, EventReads, batches
from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats

logger = logging.getLogger(__name__)


# A connection idle when an event arrives is *fresh* (served before the backlogged round) only when it holds at most
# this many subscriptions on the event's collection: its whole delivery is then a turn or so. One holding more is
# backlogged from the start (else, when many such connections are idle at once, a light one would wait behind
# each heavy one's first turn).
FRESH_SUBSCRIPTIONS = 4
# Connections an event reaches in the fast lane in one pass (synchronous: the loop does nothing else meanwhile, ~20 µs
# each); the others wait for the next pass, on the loop's next turn (its sockets are served in between).
FAST_LANE_CONNECTIONS = 1000
YIELD_EVERY = 64  # turns served between two explicit yields to the event loop (~5 ms of sends at most)


def connection_of(subscriber: Any) -> int:
    """Whose turns a subscriber's deliveries take: its socket (a GraphQL subscription), else itself; by identity
    (a socket need not be hashable; its pending entries keep it alive, so the identity is not reused meanwhile)."""
    return id(getattr(subscriber, "connection", subscriber))


def undelivered(deliveries: list[Delivery]) -> list[Delivery]:
    """Runs ``deliveries`` now, in order, while they can be (``Delivery.run_now``); the first that cannot and those
    after it are returned, to take turns in that order (the fast lane's one rule)."""
    for index, delivery in enumerate(deliveries):
        if not delivery.run_now():
            return deliveries[index:]
    return []


class Arrival:
    """An event for the subscribers of one connection, matched against their subscriptions on the connection's turn."""

    __slots__ = ("reads", "subscribers")

    def __init__(self, reads: EventReads, subscribers: list[Any]) -> None:
        self.reads = reads
        self.subscribers = subscribers

    def deliveries(self) -> list[Delivery]:
        return self.reads.deliveries(self.subscribers)

    def missed(self) -> list[tuple[Any, Subscription]]:
        """The subscriptions that would have heard of the event (sync, no database work)."""
        return [member for members in batches(self.reads.event, self.subscribers).values() for member in members]


class Resync:
    """Tells one subscription that events for it were dropped (PROTOCOL §5: the client re-reads)."""

    __slots__ = ("subscriber", "subscription")

    def __init__(self, subscriber: Any, subscription: Subscription) -> None:
        self.subscriber = subscriber
        self.subscription = subscription

    async def run(self) -> None:
        receive = getattr(self.subscriber, "receive_resync", None)
        if receive is None:  # a subscriber without a resync frame: the loss is counted and logged only
            return
        try:
            await receive(self.subscription)
        except Exception:
            stats.add("delivery_errors")
            logger.exception("could not send a resync frame on %s", self.subscription.collection)


Entry = Arrival | Delivery | Resync


def _backlog_setting() -> int:
    return int(realtime_settings.FANOUT_BACKLOG)


def _concurrency_setting() -> int:
    return int(realtime_settings.FANOUT_CONCURRENCY)


class FairScheduler:
    """Pending entries by connection, one entry per turn (``run``, or ``serve_turn`` in tests); ``run`` serves up
    to ``concurrency()`` turns at once, never two of one connection (its entries stay in order).

    Two turn orders: *fresh* connections (idle when an entry arrived for them, and holding few subscriptions on its
    collection) in arrival order, and *backlogged* ones (still holding entries after a turn, or many subscriptions)
    round-robin. While both have connections, they alternate: a
    subscriber with little to receive waits for the turn in progress and at most one backlogged turn, whatever the
    backlog of others; backlogged connections still get every other turn (none starves).
    """

    def __init__(
        self, backlog: Callable[[], int] = _backlog_setting, concurrency: Callable[[], int] = _concurrency_setting
    ) -> None:
        self.backlog = backlog
        self.concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()  # turns being served (run)
        self.queues: dict[int, deque[Entry]] = {}  # by connection_of()
        self.pending = 0  # entries in all queues
        self._fresh: OrderedDict[int, None] = OrderedDict()  # idle connections that got an entry, in order
        self._turns: OrderedDict[int, None] = OrderedDict()  # backlogged connections, round-robin
        # Idle connections past one fast-lane pass, in arrival order: the next pass (a callback on the loop's next
        # turn) tries them as the first pass did; turns take them only when nothing else waits.
        self._fast: OrderedDict[int, None] = OrderedDict()
        self._fast_pass_loop: asyncio.AbstractEventLoop | None = None  # where the next pass is scheduled, if any
        self._serving: set[int] = set()  # connections whose entry is being served (in neither order)
        self._fresh_next = True  # whose turn is next while both orders have connections
        self._work: asyncio.Event | None = None

    # -- filling ---------------------------------------------------------------------------------------------------

    def add_event(self, event: Event, subscribers: list[Any]) -> None:
        """``event`` for ``subscribers``: one arrival per connection, at the end of that connection's queue."""
        reads = EventReads(event)  # shared by the connections: a batch's read is done once for all of them
        by_connection: dict[int, list[Any]] = {}
        held: dict[int, int] = {}  # subscriptions on the collection, by connection
        for subscriber in subscribers:
            subscriptions = subscriber.subscriptions_for(event.collection)
            # Only connections with a subscription that wants the event queue it: an item subscription on
            # another row, or one for another action, costs one check here, never a turn (with thousands of item
            # subscriptions, one turn per connection per event would swamp the scheduler).
            if not any(subscription.wants(event.action, event.key_strings) for subscription in subscriptions):
                continue
            connection = connection_of(subscriber)
            by_connection.setdefault(connection, []).append(subscriber)
            held[connection] = held.get(connection, 0) + len(subscriptions)
        fast = FAST_LANE_CONNECTIONS
        later = False
        for connection, members in by_connection.items():
            fresh = held[connection] <= FRESH_SUBSCRIPTIONS
            if fresh and fast > 0 and self._delivered_now(connection, reads, members):
                fast -= 1
                continue
            later = self._push(connection, Arrival(reads, members), fresh=fresh, fast=fresh and fast <= 0) or later
        reads.release_prepared()
        if later:
            self._schedule_fast_pass()
        if self.pending > self.backlog():
            self._overflow()

    def _delivered_now(self, connection: int, reads: EventReads, members: list[Any]) -> bool:
        """The fast lane: a connection with nothing pending and few subscriptions on the collection gets the event at
        once, where its reads need no database (the rows as committed, or a batch read already) and its socket can
        write at once (``receive_event_now``); the first delivery that cannot, and those after it, take turns as
        usual, in order. ``False`` when the arrival is to be queued whole (the connection has entries pending)."""
        if connection in self.queues or connection in self._serving:
            return False  # its earlier entries first: frames keep the order of events
        for rest in undelivered(reads.deliveries(members)):
            self._push(connection, rest, fresh=True)
        return True

    def _push(self, connection: int, entry: Entry, *, fresh: bool, fast: bool = False) -> bool:
        """``entry`` at the end of the connection's queue; ``True`` when the connection waits for a fast-lane pass
        (``fast``: idle, and past this pass's bound)."""
        queue = self.queues.get(connection)
        if queue is None:
            queue = self.queues[connection] = deque()
        queue.append(entry)
        self.pending += 1
        waits_for_pass = False
        if connection in self._fast:
            waits_for_pass = True  # it keeps its place, and a pass must come for it
        elif connection in self._serving or connection in self._turns or connection in self._fresh:
            pass  # it keeps its place
        elif fast and len(queue) == 1:
            self._fast[connection] = None
            waits_for_pass = True
        elif fresh:
            self._fresh[connection] = None
        else:
            self._turns[connection] = None
        if self._work is not None and not waits_for_pass:
            self._work.set()
        return waits_for_pass

    def _schedule_fast_pass(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous test): they take turns like any fresh connection
            self._fresh.update(self._fast)
            self._fast.clear()
            return
        if self._fast_pass_loop is loop:
            return  # one is due on this loop already
        self._fast_pass_loop = loop
        loop.call_soon(self._fast_pass)

    def _fast_pass(self) -> None:
        """The next ``FAST_LANE_CONNECTIONS`` connections that an earlier pass could not reach: each gets its first
        pending event at once where it can (as in ``add_event``); what cannot be sent now, and any later entries,
        take turns. Another pass follows on the loop's next turn while connections wait for one."""
        self._fast_pass_loop = None
        touched: dict[int, EventReads] = {}
        budget = FAST_LANE_CONNECTIONS
        try:
            while self._fast and budget > 0:
                connection, _ = self._fast.popitem(last=False)
                queue = self.queues.get(connection)
                if not queue:
                    continue
                budget -= 1
                try:
                    self._pass_one(queue, touched)
                except Exception:  # as in a turn: a subscriber whose subscriptions cannot be matched; the others go on
                    stats.add("delivery_errors")
                    logger.exception("an event delivery failed")
                if queue:
                    self._fresh[connection] = None
                    if self._work is not None:
                        self._work.set()
                else:
                    self._set_queue(connection, queue)
        finally:
            for reads in touched.values():
                reads.release_prepared()
            if self._fast:
                self._schedule_fast_pass()

    def _pass_one(self, queue: deque[Entry], touched: dict[int, EventReads]) -> None:
        """One connection's first pending event, delivered now where it can be (``_fast_pass``)."""
        entry = queue[0]
        if not isinstance(entry, Arrival):
            return
        queue.popleft()
        self.pending -= 1
        touched[id(entry.reads)] = entry.reads
        rest = undelivered(entry.deliveries())
        queue.extendleft(reversed(rest))
        self.pending += len(rest)

    def drop(self, subscriber: Any) -> None:
        """``subscriber`` stopped listening (its socket closed, its GraphQL operation ended): its entries go."""
        connection = connection_of(subscriber)
        queue = self.queues.get(connection)
        if queue is None:
            return
        kept: deque[Entry] = deque()
        for entry in queue:
            if isinstance(entry, Arrival):
                others = [member for member in entry.subscribers if member is not subscriber]
                if others:
                    kept.append(entry if len(others) == len(entry.subscribers) else Arrival(entry.reads, others))
            elif entry.subscriber is not subscriber:
                kept.append(entry)
        self.pending -= len(queue) - len(kept)
        self._set_queue(connection, kept)

    def _set_queue(self, connection: int, queue: deque[Entry]) -> None:
        if queue:
            self.queues[connection] = queue
        else:
            self.queues.pop(connection, None)
            self._fresh.pop(connection, None)
            self._turns.pop(connection, None)
            self._fast.pop(connection, None)

    def _overflow(self) -> None:
        """The connection with the most pending entries loses them: a resync for each subscription that missed
        an event, counted and logged (never silently)."""
        connection = max(self.queues, key=lambda c: len(self.queues[c]))
        queue = self.queues[connection]
        missed: dict[int, tuple[Any, Subscription]] = {}
        dropped = 0
        for entry in queue:
            members = entry.missed() if isinstance(entry, Arrival) else [(entry.subscriber, entry.subscription)]
            if not isinstance(entry, Resync):
                dropped += len(members)
            for subscriber, subscription in members:
                missed.setdefault(id(subscription), (subscriber, subscription))
        resyncs: deque[Entry] = deque(Resync(subscriber, subscription) for subscriber, subscription in missed.values())
        self.pending += len(resyncs) - len(queue)
        stats.add("deliveries_dropped", dropped)
        logger.warning(
            "fan-out backlog over %d: dropped %d pending deliveries of one connection, %d subscription(s) resync",
            self.backlog(),
            dropped,
            len(resyncs),
        )
        self._set_queue(connection, resyncs)

    # -- serving ---------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve turns forever (the dispatcher's delivery task): up to ``concurrency()`` at once, each of a
        different connection. Served one after the other, each turn's re-read waited for a hop to the database
        thread and back and a turn of the server's loop, the database thread idle in between (the soak: a process
        serving writes fell minutes behind while its database thread was busy 4 % of the time)."""
        self._work = asyncio.Event()
        try:
            await self._run(asyncio.Semaphore(self.concurrency()))
        finally:  # the dispatcher stopped: its turns end with it
            for task in list(self._running):
                task.cancel()

    async def _run(self, slots: asyncio.Semaphore) -> None:
        assert self._work is not None
        loop = asyncio.get_running_loop()
        started = 0
        while True:
            if not self._turns and not self._fresh:
                self._work.clear()
                await self._work.wait()
                continue
            await slots.acquire()
            connection = self._next()
            if connection is None:  # taken meanwhile (a drop): wait for work again
                slots.release()
                continue
            task = loop.create_task(self._turn(connection))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: slots.release())
            started += 1
            if started % YIELD_EVERY == 0:
                # Turns whose read was done already send without suspending: let the loop run its sockets now and
                # then. Not after every turn: a frame and the next turn's re-read then reach the database thread
                # before any work that the frame's receiver starts (tests order a write after a frame on this).
                await asyncio.sleep(0)

    async def _turn(self, connection: int) -> None:
        try:
            await self._serve_and_requeue(connection)
        except Exception:  # a subscriber whose subscriptions cannot be matched: the others go on
            stats.add("delivery_errors")
            logger.exception("an event delivery failed")

    async def serve_turn(self) -> bool:
        """The next connection in turn serves one entry; ``False`` when no connection has any."""
        connection = self._next()
        if connection is None:
            return False
        await self._serve_and_requeue(connection)
        return True

    def _next(self) -> int | None:
        """The connection whose turn it is (now *serving*: in neither order until its turn ends), or ``None``."""
        if self._fresh and (self._fresh_next or not self._turns):
            connection, _ = self._fresh.popitem(last=False)
            self._fresh_next = not self._turns  # a backlogged connection that waited gets the next turn
        elif self._turns:
            connection, _ = self._turns.popitem(last=False)
            self._fresh_next = True
        elif self._fast:  # nothing else waits: a turn does what the next fast-lane pass would
            connection, _ = self._fast.popitem(last=False)
        else:
            return None
        self._serving.add(connection)
        return connection

    async def _serve_and_requeue(self, connection: int) -> None:
        try:
            await self._serve(connection)
        finally:
            self._serving.discard(connection)
            queue = self.queues.get(connection)  # replaced meanwhile when it overflowed, gone when it closed
            if queue:
                self._turns[connection] = None  # backlogged: to the back of the round
                if self._work is not None:
                    self._work.set()
            elif queue is not None:
                self._set_queue(connection, queue)

    async def _serve(self, connection: int) -> None:
        queue = self.queues.get(connection)
        if not queue:  # closed between the choice of its turn and the turn's start (run starts turns as tasks)
            return
        entry = queue.popleft()
        self.pending -= 1
        if isinstance(entry, Arrival):  # matched on this connection's turn; its first delivery goes in the same turn
            deliveries = entry.deliveries()
            if not deliveries:
                return
            queue.extendleft(reversed(deliveries[1:]))
            self.pending += len(deliveries) - 1
            await deliveries[0].run()
            return
        await entry.run()
