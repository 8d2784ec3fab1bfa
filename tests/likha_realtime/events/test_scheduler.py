"""The fair scheduler (``events.scheduler``, docs/FANOUT.md "Fair delivery"): connections take turns, one delivery
each; a read shared by several connections is done once; a connection's frames keep the order of events; what a
closed connection had pending is dropped; over the backlog, the longest queue resyncs.

No database here: subscriptions are built directly and the batch re-read (``deliver._payload``) is replaced by a
recording fake, so each test states exactly which reads and frames happen in which order.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any, cast

import pytest

from likha_realtime.access.subscriptions import Subscription
from likha_realtime.events import deliver as deliver_module
from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.events.model import Event
from likha_realtime.events.scheduler import FairScheduler
from likha_realtime.events.stats import stats
from tests.likha_realtime.support import Roles, next_frame, open_socket, subscribe
from tests.support import wait_until_async

PLAN = cast(Any, object())  # any plan: only "not suspended" matters to the matching


def sub(uid: str, read: str, collection: str = "products") -> Subscription:
    """A subscription whose re-read is ``read``: subscriptions with the same ``read`` share a batch."""
    return Subscription(uid, collection, None, None, None, PLAN, batch_key=read)


def update(*keys: int) -> Event:
    return Event("products", "update", keys)


class Rows(list[Any]):
    """A payload that can be watched for release (a plain list cannot be weakly referenced)."""


class World:
    """Records, in order, every re-read (``("read", batch)``) and every frame (``(connection, uid, keys)``)."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.payloads: list[weakref.ref[Rows]] = []
        self.hold: asyncio.Event | None = None  # set: reads wait until it is set

    async def payload(self, subscription: Subscription, event: Event, keys: tuple[Any, ...]) -> Any:
        self.log.append(("read", subscription.batch_key, keys))
        if self.hold is not None:
            await self.hold.wait()
        rows = Rows([{"id": key} for key in keys])
        self.payloads.append(weakref.ref(rows))
        return rows

    def frames(self) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if entry[0] != "read"]

    def reads(self) -> list[tuple[Any, ...]]:
        return [entry for entry in self.log if entry[0] == "read"]


class Connection:
    """A REST-like connection: it holds its subscriptions and is its own connection."""

    def __init__(self, world: World, name: str, *subscriptions: Subscription) -> None:
        self.world = world
        self.name = name
        self.subscriptions = list(subscriptions)

    def subscriptions_for(self, collection: str) -> list[Subscription]:
        return [s for s in self.subscriptions if s.collection == collection]

    async def receive_event(self, subscription: Subscription, action: str, payload: Any, data_json: str) -> None:
        self.world.log.append((self.name, subscription.uid, tuple(row["id"] for row in payload)))

    async def receive_resync(self, subscription: Subscription) -> None:
        self.world.log.append((self.name, subscription.uid, "resync"))


class Operation(Connection):
    """A GraphQL-like subscriber: one of several on a socket, whose turns it takes."""

    def __init__(self, world: World, name: str, socket: object, subscription: Subscription) -> None:
        super().__init__(world, name, subscription)
        self.connection = socket


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World()
    monkeypatch.setattr(deliver_module, "_payload", world.payload)
    stats.reset()
    yield world
    stats.reset()


async def serve_all(scheduler: FairScheduler) -> None:
    while await scheduler.serve_turn():
        pass
    assert scheduler.pending == 0 and not scheduler.queues


def many(prefix: str, count: int) -> list[Subscription]:
    """``count`` subscriptions with distinct reads (the attacker's: no two share a batch)."""
    return [sub(f"{prefix}{n}", f"{prefix}-read-{n}") for n in range(count)]


# -- turns -----------------------------------------------------------------------------------------------------


async def test_connections_take_turns_one_delivery_each_fresh_and_backlogged_ones_alternating(world: World) -> None:
    attacker = Connection(world, "A", *many("a", 4))
    b = Connection(world, "B", sub("b", "b-read"))
    c = Connection(world, "C", sub("c", "c-read"))
    scheduler = FairScheduler(backlog=lambda: 1000)

    scheduler.add_event(update(7), [attacker, b, c])
    await serve_all(scheduler)

    # A is backlogged after its first turn; B and C (fresh: nothing pending before) alternate with it.
    assert world.frames() == [
        ("A", "a0", (7,)),
        ("B", "b", (7,)),
        ("A", "a1", (7,)),
        ("C", "c", (7,)),
        ("A", "a2", (7,)),
        ("A", "a3", (7,)),
    ]
    assert len(world.reads()) == 6


async def test_connections_whose_subscriptions_do_not_want_the_event_take_no_turn(world: World) -> None:
    """Item subscriptions on other rows and subscriptions to another action queue nothing (a soak with
    thousands of item subscriptions swamped the scheduler with one matching turn per connection per event)."""
    items = [
        Connection(world, f"I{n}", Subscription(f"i{n}", "products", None, None, n, PLAN, batch_key=f"item-{n}"))
        for n in range(1, 6)
    ]
    creates = Connection(world, "C", Subscription("c", "products", None, "create", None, PLAN, batch_key="c-read"))
    everything = Connection(world, "E", sub("e", "e-read"))
    scheduler = FairScheduler(backlog=lambda: 1000)

    scheduler.add_event(update(3, 5), [*items, creates, everything])

    assert scheduler.pending == 3 and len(scheduler.queues) == 3
    await serve_all(scheduler)
    assert sorted(world.frames()) == [("E", "e", (3, 5)), ("I3", "i3", (3, 5)), ("I5", "i5", (3, 5))]


async def test_backlogged_connections_share_turns_round_robin(world: World) -> None:
    a = Connection(world, "A", *many("a", 4))
    b = Connection(world, "B", *many("b", 4))
    scheduler = FairScheduler(backlog=lambda: 1000)

    scheduler.add_event(update(3), [a, b])
    await serve_all(scheduler)

    assert [uid for _, uid, _ in world.frames()] == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]


async def test_a_later_event_does_not_wait_for_an_earlier_events_tail_on_another_connection(world: World) -> None:
    attacker = Connection(world, "A", *many("a", 100))
    victim = Connection(world, "V", sub("v", "v-read"))
    scheduler = FairScheduler(backlog=lambda: 10_000)

    scheduler.add_event(update(1), [attacker, victim])  # A, with many subscriptions, is backlogged at once
    for _ in range(4):  # V: event 1, then A: a0, a1, a2 (V has nothing pending)
        await scheduler.serve_turn()
    scheduler.add_event(update(2), [attacker, victim])
    await scheduler.serve_turn()  # V (fresh): event 2, before A's 97 other re-reads of event 1

    assert world.frames() == [
        ("V", "v", (1,)),
        ("A", "a0", (1,)),
        ("A", "a1", (1,)),
        ("A", "a2", (1,)),
        ("V", "v", (2,)),
    ]
    await serve_all(scheduler)
    assert world.frames()[5:] == [("A", f"a{n}", (1,)) for n in range(3, 100)] + [
        ("A", f"a{n}", (2,)) for n in range(100)
    ]


async def test_a_fresh_connection_waits_for_at_most_one_backlogged_turn(world: World) -> None:
    attackers = [Connection(world, f"A{i}", *many(f"a{i}-", 10)) for i in range(20)]
    victim = Connection(world, "V", sub("v", "v-read"))
    scheduler = FairScheduler(backlog=lambda: 10_000)
    scheduler.add_event(update(1), attackers)
    for _ in range(40):  # fresh turns alternate with backlogged ones: now all 20 are backlogged
        await scheduler.serve_turn()
    assert all(len(scheduler.queues[id(attacker)]) > 1 for attacker in attackers)
    before = len(world.frames())

    scheduler.add_event(update(2), [*attackers, victim])
    await scheduler.serve_turn()
    await scheduler.serve_turn()

    served = world.frames()[before:]
    assert ("V", "v", (2,)) in served  # after at most one of the 20 backlogged connections' turns
    assert len([name for name, *_ in served if name != "V"]) == 1


async def test_idle_connections_with_many_subscriptions_do_not_go_before_a_light_one(world: World) -> None:
    attackers = [Connection(world, f"A{i}", *many(f"a{i}-", 10)) for i in range(20)]
    victim = Connection(world, "V", sub("v", "v-read"))
    scheduler = FairScheduler(backlog=lambda: 10_000)

    scheduler.add_event(update(1), [*attackers, victim])  # all idle: the attackers' first event
    await scheduler.serve_turn()

    assert world.frames() == [("V", "v", (1,))]


async def test_backlogged_connections_get_every_other_turn_while_fresh_ones_keep_coming(world: World) -> None:
    heavy = Connection(world, "H", *many("h", 10))
    sparse = [Connection(world, f"S{i}", sub(f"s{i}", f"s-read-{i}")) for i in range(6)]
    scheduler = FairScheduler(backlog=lambda: 10_000)
    scheduler.add_event(update(1), [heavy])
    await scheduler.serve_turn()  # H: h0, then backlogged

    scheduler.add_event(update(2), sparse)  # six fresh connections at once
    for _ in range(8):
        await scheduler.serve_turn()

    assert [name for name, *_ in world.frames()[1:]] == ["S0", "H", "S1", "H", "S2", "H", "S3", "H"]


async def test_each_connection_gets_its_frames_in_the_order_of_events(world: World) -> None:
    a = Connection(world, "A", *many("a", 3))
    b = Connection(world, "B", *many("b", 2))
    scheduler = FairScheduler(backlog=lambda: 1000)

    for key in (1, 2, 3):
        scheduler.add_event(update(key), [a, b])
    await serve_all(scheduler)

    expected = {
        "A": [("A", f"a{n}", (key,)) for key in (1, 2, 3) for n in range(3)],
        "B": [("B", f"b{n}", (key,)) for key in (1, 2, 3) for n in range(2)],
    }
    assert {name: [f for f in world.frames() if f[0] == name] for name in "AB"} == expected


async def test_subscriptions_of_one_graphql_socket_share_its_turns(world: World) -> None:
    socket = object()
    first = Operation(world, "S1", socket, sub("s1", "s1-read"))
    second = Operation(world, "S2", socket, sub("s2", "s2-read"))
    other = Connection(world, "B", sub("b", "b-read"))
    scheduler = FairScheduler(backlog=lambda: 1000)

    scheduler.add_event(update(5), [first, second, other])
    assert set(scheduler.queues) == {id(socket), id(other)}
    await serve_all(scheduler)

    assert world.frames() == [("S1", "s1", (5,)), ("B", "b", (5,)), ("S2", "s2", (5,))]


# -- shared reads ------------------------------------------------------------------------------------------------


async def test_a_read_shared_by_several_connections_is_done_once_and_kept_until_the_last_has_it(
    world: World,
) -> None:
    sharing = [Connection(world, f"S{n}", sub(f"s{n}", "shared")) for n in range(3)]
    attacker = Connection(world, "A", *many("a", 3))
    scheduler = FairScheduler(backlog=lambda: 1000)

    scheduler.add_event(update(9), [sharing[0], attacker, sharing[1], sharing[2]])
    await scheduler.serve_turn()  # S0 reads the shared batch
    await scheduler.serve_turn()  # A reads its own first batch
    assert world.reads() == [("read", "shared", (9,)), ("read", "a-read-0", (9,))]
    shared_rows = world.payloads[0]
    await scheduler.serve_turn()  # S1: the shared read, memoised
    assert shared_rows() is not None  # S2 has not taken it yet
    await serve_all(scheduler)
    gc.collect()

    assert [r[1] for r in world.reads()] == ["shared", "a-read-0", "a-read-1", "a-read-2"]
    assert world.frames() == [
        ("S0", "s0", (9,)),
        ("A", "a0", (9,)),
        ("S1", "s1", (9,)),
        ("A", "a1", (9,)),
        ("S2", "s2", (9,)),
        ("A", "a2", (9,)),
    ]
    assert shared_rows() is None  # released once every member had it: nothing kept after the event


async def test_a_read_in_progress_is_awaited_not_done_twice(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two members of a batch on different connections, the read slow: the second waits for the first's read.
    a = Connection(world, "A", sub("a", "shared"))
    b = Connection(world, "B", sub("b", "shared"))
    scheduler = FairScheduler(backlog=lambda: 1000)
    world.hold = asyncio.Event()
    scheduler.add_event(update(3), [a, b])
    awaiting: list[object] = []  # reads in progress that another member awaits (SharedRead shields them)
    shield = asyncio.shield

    def recorded(future: Any) -> Any:
        awaiting.append(future)
        return shield(future)

    monkeypatch.setattr(deliver_module.asyncio, "shield", recorded)

    first = asyncio.create_task(scheduler.serve_turn())
    await wait_until_async(lambda: world.reads())
    second = asyncio.create_task(scheduler.serve_turn())
    await wait_until_async(lambda: awaiting, message="the second member did not wait for the read in progress")
    world.hold.set()
    await asyncio.gather(first, second)

    assert world.reads() == [("read", "shared", (3,))]
    assert world.frames() == [("A", "a", (3,)), ("B", "b", (3,))]


async def test_a_failed_read_is_counted_and_the_others_go_on(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(subscription: Subscription, event: Event, keys: tuple[Any, ...]) -> Any:
        if subscription.batch_key == "broken":
            raise RuntimeError("database gone")
        return await world.payload(subscription, event, keys)

    monkeypatch.setattr(deliver_module, "_payload", failing)
    a = Connection(world, "A", sub("x", "broken"), sub("y", "fine"))
    b = Connection(world, "B", sub("z", "broken"))
    scheduler = FairScheduler(backlog=lambda: 1000)

    scheduler.add_event(update(4), [a, b])
    await serve_all(scheduler)

    assert world.frames() == [("A", "y", (4,))]
    assert stats.delivery_errors == 1  # one failed read, whatever its members


# -- closed connections and the backlog ----------------------------------------------------------------------


async def test_a_closed_connection_leaves_nothing_pending(world: World) -> None:
    gone = Connection(world, "G", *many("g", 50))
    stays = Connection(world, "S", sub("s", "s-read"))
    scheduler = FairScheduler(backlog=lambda: 10_000)
    for key in range(3):
        scheduler.add_event(update(key), [gone, stays])
    await scheduler.serve_turn()  # S (fresh): event 0
    await scheduler.serve_turn()  # G: event 0 matched, 49 deliveries left
    assert scheduler.pending == 49 + 2 + 2  # G: 49 deliveries and 2 events; S: 2 events

    scheduler.drop(gone)

    assert id(gone) not in scheduler.queues and scheduler.pending == 2
    await serve_all(scheduler)
    assert [f for f in world.frames() if f[0] == "G"] == [("G", "g0", (0,))]
    assert [f for f in world.frames() if f[0] == "S"] == [("S", "s", (k,)) for k in range(3)]


async def test_a_connection_closed_while_it_is_served_is_not_served_again(world: World) -> None:
    gone = Connection(world, "G", *many("g", 5))
    scheduler = FairScheduler(backlog=lambda: 1000)
    world.hold = asyncio.Event()
    scheduler.add_event(update(1), [gone])
    turn = asyncio.create_task(scheduler.serve_turn())
    await wait_until_async(lambda: world.reads())

    scheduler.drop(gone)
    world.hold.set()
    await turn

    assert not scheduler.queues and scheduler.pending == 0
    assert await scheduler.serve_turn() is False
    assert len(world.reads()) == 1


async def test_one_graphql_subscription_ending_keeps_the_sockets_other_entries(world: World) -> None:
    socket = object()
    ended = Operation(world, "S1", socket, sub("s1", "s1-read"))
    running = Operation(world, "S2", socket, sub("s2", "s2-read"))
    scheduler = FairScheduler(backlog=lambda: 1000)
    scheduler.add_event(update(1), [ended, running])
    scheduler.add_event(update(2), [ended, running])

    scheduler.drop(ended)
    await serve_all(scheduler)

    assert world.frames() == [("S2", "s2", (1,)), ("S2", "s2", (2,))]


async def test_over_the_backlog_the_connection_with_most_pending_resyncs_instead(world: World) -> None:
    greedy = Connection(world, "A", *many("a", 4))
    victim = Connection(world, "V", sub("v", "v-read"))
    scheduler = FairScheduler(backlog=lambda: 5)
    scheduler.add_event(update(1), [greedy, victim])
    await scheduler.serve_turn()  # A: event 1 matched, a0 sent, a1..a3 pending
    assert scheduler.pending == 4

    scheduler.add_event(update(2), [greedy, victim])  # 6 pending > 5: A (4 entries) loses its queue

    assert stats.deliveries_dropped == 3 + 4  # a1..a3 of event 1, a0..a3 of event 2
    await serve_all(scheduler)
    assert world.frames() == [
        ("A", "a0", (1,)),
        ("V", "v", (1,)),
        ("A", "a1", "resync"),
        ("V", "v", (2,)),
        ("A", "a2", "resync"),
        ("A", "a3", "resync"),
        ("A", "a0", "resync"),
    ]


# -- the REST socket's resync frame --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_layer")
async def test_the_rest_socket_sends_a_resync_for_a_current_subscription_only(roles: Roles) -> None:
    socket = await open_socket(roles.path("editor"))
    await subscribe(socket, query={"fields": ["id"], "limit": 1}, uid="r1")
    await subscribe(socket, query={"fields": ["id"], "limit": 1}, uid="r2")
    (consumer,) = get_dispatcher().listeners["products"]
    r1, r2 = consumer.subscriptions["r1"], consumer.subscriptions["r2"]
    await socket.send_json_to({"type": "unsubscribe", "uid": "r2"})
    assert await next_frame(socket) == {"type": "subscription", "event": "unsubscribe", "uid": "r2"}

    await consumer.receive_resync(r2)  # no longer the connection's: nothing
    await consumer.receive_resync(r1)

    assert await next_frame(socket) == {"type": "subscription", "event": "resync", "uid": "r1"}
    assert await socket.receive_nothing()
    await socket.disconnect()


# -- concurrent turns (run) ------------------------------------------------------------------------------------


async def test_run_serves_other_connections_while_one_waits_for_its_read_never_two_turns_of_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While A's re-read waits (the database thread busy), B's and C's turns go on; A's second event waits for its
    first (its frames keep their order); at most ``concurrency`` turns at once."""
    held = asyncio.Event()
    slow_read = asyncio.Event()

    async def payload(subscription: Subscription, event: Event, keys: tuple[Any, ...]) -> Any:
        world.log.append(("read", subscription.batch_key, keys))
        if subscription.batch_key == "a-read":
            slow_read.set()
            await held.wait()
        return Rows([{"id": key} for key in keys])

    monkeypatch.setattr(deliver_module, "_payload", payload)
    a = Connection(world, "A", sub("a", "a-read"))
    b = Connection(world, "B", sub("b", "b-read"))
    c = Connection(world, "C", sub("c", "c-read"))
    scheduler = FairScheduler(backlog=lambda: 1000, concurrency=lambda: 2)
    runner = asyncio.ensure_future(scheduler.run())
    try:
        scheduler.add_event(update(1), [a])
        await asyncio.wait_for(slow_read.wait(), 5)
        scheduler.add_event(update(2), [a, b, c])
        await wait_until_async(lambda: len(world.frames()) == 2, message="B and C waited for A's read")
        assert world.frames() == [("B", "b", (2,)), ("C", "c", (2,))]
        assert world.reads().count(("read", "a-read", (1,))) == 1
        assert ("read", "a-read", (2,)) not in world.reads()  # A's next turn waits for its first to end
        held.set()
        await wait_until_async(lambda: len(world.frames()) == 4, message="A's frames did not follow")
        assert world.frames()[2:] == [("A", "a", (1,)), ("A", "a", (2,))]
        assert scheduler.pending == 0
    finally:
        runner.cancel()


async def test_run_serves_at_most_concurrency_turns_at_once(world: World) -> None:
    world.hold = asyncio.Event()
    connections = [Connection(world, f"C{n}", sub(f"c{n}", f"read-{n}")) for n in range(6)]
    scheduler = FairScheduler(backlog=lambda: 1000, concurrency=lambda: 3)
    runner = asyncio.ensure_future(scheduler.run())
    try:
        scheduler.add_event(update(1), connections)
        await wait_until_async(lambda: len(world.reads()) == 3, message="fewer than 3 turns started")
        # run starts turns without yielding until a slot is missing: over the limit, all six would be running now.
        assert len(scheduler._running) == 3
        assert len(scheduler._fresh) + len(scheduler._turns) == 3  # the other three still wait for their turn
        world.hold.set()
        await wait_until_async(lambda: len(world.frames()) == 6, message="not every connection was served")
    finally:
        runner.cancel()


async def test_a_connection_closed_between_the_choice_of_its_turn_and_its_start_is_skipped(world: World) -> None:
    """``run`` picks a connection, then starts its turn as a task: the socket may close in between."""
    a = Connection(world, "A", sub("a", "a-read"))
    b = Connection(world, "B", sub("b", "b-read"))
    scheduler = FairScheduler(backlog=lambda: 1000)
    scheduler.add_event(update(1), [a, b])
    chosen = scheduler._next()  # A's turn (the task not started yet)
    scheduler.drop(a)

    await scheduler._serve_and_requeue(chosen)  # nothing to serve: no error, nothing sent

    await serve_all(scheduler)
    assert world.frames() == [("B", "b", (1,))]


# -- the fast lane -------------------------------------------------------------------------------------------------


class FastConnection(Connection):
    """A connection that can write at once (a REST socket under daphne)."""

    def receive_event_now(
        self, subscription: Subscription, action: str, payload: Any, data_json: str, read: Any
    ) -> bool:
        self.world.log.append((self.name, subscription.uid, tuple(row["id"] for row in payload), "now"))
        return True


def committed_rows_only(monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    from likha_realtime.events import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "FAST_LANE_CONNECTIONS", cap)
    monkeypatch.setattr(deliver_module, "committed_payload", lambda s, action, keys, states: [{"id": k} for k in keys])


async def test_one_fast_lane_pass_reaches_a_bounded_number_of_connections_the_next_pass_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass is bounded (the loop serves nothing else meanwhile); the connections past it get the event in the next
    pass, on the loop's next turn: their sockets' other work runs in between, and no turn is needed."""
    committed_rows_only(monkeypatch, 3)
    connections = [FastConnection(world, f"C{n}", sub(f"s{n}", "shared")) for n in range(8)]
    scheduler = FairScheduler(backlog=lambda: 1000)
    seen_between: list[int] = []

    scheduler.add_event(update(1), connections)
    asyncio.get_running_loop().call_soon(lambda: seen_between.append(len(world.frames())))

    assert world.frames() == [(f"C{n}", f"s{n}", (1,), "now") for n in range(3)]  # synchronously, in one pass
    assert scheduler.pending == 5
    await wait_until_async(lambda: len(world.frames()) == 8, message="the next passes did not reach the others")
    assert world.frames() == [(f"C{n}", f"s{n}", (1,), "now") for n in range(8)]  # all in the fast lane
    assert seen_between == [6]  # the loop ran other callbacks between the second pass and the third
    assert scheduler.pending == 0 and not scheduler.queues
    assert world.reads() == []  # one read from the committed rows for the batch, shared, no database read


async def test_a_connection_waiting_for_a_fast_lane_pass_gets_its_events_in_order(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed_rows_only(monkeypatch, 1)
    a = FastConnection(world, "A", sub("a", "shared"))
    b = FastConnection(world, "B", sub("b", "shared"))
    scheduler = FairScheduler(backlog=lambda: 1000)
    runner = asyncio.ensure_future(scheduler.run())
    try:
        scheduler.add_event(update(1), [a, b])  # A now, B waits for the next pass
        scheduler.add_event(update(2), [a, b])  # A now again; B's second event queues behind its first
        await wait_until_async(lambda: len(world.frames()) == 4, message="B's frames did not follow")
    finally:
        runner.cancel()
    b_frames = [frame[:3] for frame in world.frames() if frame[0] == "B"]
    assert b_frames == [("B", "b", (1,)), ("B", "b", (2,))]
    assert scheduler.pending == 0


async def test_a_connection_that_fails_in_a_fast_lane_pass_does_not_strand_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a turn, one subscriber whose subscriptions cannot be matched is counted and logged; the pass goes on,
    and the next pass still comes."""
    from likha_realtime.events import scheduler as scheduler_module

    committed_rows_only(monkeypatch, 1)
    connections = [FastConnection(world, f"C{n}", sub(f"s{n}", "shared")) for n in range(4)]
    real = scheduler_module.Arrival.deliveries

    def deliveries(self: Any) -> Any:
        if self.subscribers[0] is connections[1]:
            raise RuntimeError("cannot be matched")
        return real(self)

    monkeypatch.setattr(scheduler_module.Arrival, "deliveries", deliveries)
    scheduler = FairScheduler(backlog=lambda: 1000)
    errors = stats.delivery_errors

    scheduler.add_event(update(1), connections)  # C0 now; C1, C2, C3 one per pass

    await wait_until_async(lambda: len(world.frames()) == 3, message="the passes after the failure did not come")
    assert [frame[0] for frame in world.frames()] == ["C0", "C2", "C3"]
    assert stats.delivery_errors == errors + 1
    assert scheduler.pending == 0 and not scheduler._fast


async def test_turns_serve_connections_waiting_for_a_pass_when_nothing_else_waits(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed_rows_only(monkeypatch, 1)
    connections = [FastConnection(world, f"C{n}", sub(f"s{n}", "shared")) for n in range(3)]
    scheduler = FairScheduler(backlog=lambda: 1000)
    scheduler.add_event(update(1), connections)

    await serve_all(scheduler)  # before the loop runs the pass

    assert sorted(frame[0] for frame in world.frames()) == ["C0", "C1", "C2"]
    assert scheduler.pending == 0
