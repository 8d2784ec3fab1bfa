"""Resync (PROTOCOL §5, §8): after events may have been missed — a gap in a publisher's sequence, a publisher that
dropped events, the delivery queue overflowing, the process channel recovering from a channel-layer failure — each
subscription of the affected collections hears it once; REST and GraphQL frames have their exact shapes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer

from likha_realtime.events import fanout
from likha_realtime.events.fanout import Dispatcher, get_dispatcher
from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats
from likha_realtime.events.transport import EVENT_MESSAGE, group_name
from likha_realtime.node import ProcessChannel
from tests.likha_realtime.graphql.support import communicator, pair_for, start_subscription
from tests.likha_realtime.support import FRAME_WAIT, open_socket, realtime
from tests.support import wait_until_async


class Recorder:
    """A subscriber that records the resyncs it is told of (and has no subscriptions to deliver to)."""

    def __init__(self) -> None:
        self.resyncs: list[str] = []

    def subscriptions_for(self, collection: str) -> list[Any]:
        return []

    async def receive_event(self, *args: Any) -> None:
        raise AssertionError("no subscription, no event")

    async def resync(self, collection: str) -> int:
        self.resyncs.append(collection)
        return 1


def message(collection: str, seq: int, publisher: str = "p", **extra: Any) -> dict[str, Any]:
    return {
        "type": EVENT_MESSAGE,
        **Event(collection, "update", (10**9,)).to_message(),  # no such row: nothing to deliver
        "publisher": publisher,
        "seq": seq,
        **extra,
    }


@pytest.fixture(autouse=True)
def clean_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    made = Dispatcher(ProcessChannel(InMemoryChannelLayer()))
    yield made
    made.stop()


async def settle(dispatcher: Dispatcher) -> None:
    """Until the resyncs asked for so far were sent."""
    await wait_until_async(
        lambda: not dispatcher._resync_pending and (dispatcher._resync_task is None or dispatcher._resync_task.done()),
        message="resyncs still pending",
    )


async def test_a_gap_in_one_collection_resyncs_that_collections_subscribers_once(dispatcher: Dispatcher) -> None:
    products, customers = Recorder(), Recorder()
    dispatcher.listeners["products"].add(products)
    dispatcher.listeners["customers"].add(customers)
    dispatcher._on_event(message("products", 1))
    dispatcher._on_event(message("customers", 1))  # numbered per collection: no gap for either
    dispatcher._on_event(message("products", 2))
    await settle(dispatcher)
    assert products.resyncs == customers.resyncs == [] and stats.lost == 0

    dispatcher._on_event(message("products", 5))  # 3 and 4 never arrived
    dispatcher._on_event(message("products", 9))  # nor 6-8: one resync for both gaps (sent once the loop turns)
    await settle(dispatcher)
    assert products.resyncs == ["products"] and customers.resyncs == []
    assert stats.lost == 5 and stats.resyncs == 1
    assert dispatcher.queue.qsize() == 5  # every event that arrived is still delivered


class TimedRecorder(Recorder):
    """A ``Recorder`` that also notes when (the loop's clock) each resync came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def resync(self, collection: str) -> int:
        self.times.append(asyncio.get_running_loop().time())
        return await super().resync(collection)


async def test_gap_after_gap_resyncs_at_most_once_per_interval(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process behind its channel sees gap after gap: the first is told at once, what follows within the
    interval goes in one round after it (not a round per gap: the soak's resync storm)."""
    monkeypatch.setattr(fanout, "RESYNC_INTERVAL_SECONDS", 0.5)
    products = TimedRecorder()
    dispatcher.listeners["products"].add(products)
    dispatcher._on_event(message("products", 1))
    dispatcher._on_event(message("products", 3))  # 2 lost
    await settle(dispatcher)
    assert products.resyncs == ["products"]
    for seq in (5, 7, 9, 11):  # 4, 6, 8, 10 lost, each a gap of its own
        dispatcher._on_event(message("products", seq))
    await settle(dispatcher)
    assert products.resyncs == ["products", "products"] and stats.lost == 5
    assert products.times[1] - products.times[0] >= 0.5


async def test_an_event_saying_that_its_publisher_dropped_events_resyncs(dispatcher: Dispatcher) -> None:
    products = Recorder()
    dispatcher.listeners["products"].add(products)
    dispatcher._on_event(message("products", 1, lost=True))
    await settle(dispatcher)
    assert products.resyncs == ["products"] and stats.lost == 0


async def test_a_recovery_resyncs_every_collection_once_and_forgets_the_old_sequences(dispatcher: Dispatcher) -> None:
    products, customers, idle = Recorder(), Recorder(), Recorder()
    dispatcher.listeners["products"].update({products, idle})
    dispatcher.listeners["customers"].add(customers)
    dispatcher.listeners["orders"]  # a collection whose subscribers all left
    dispatcher._on_event(message("products", 1))
    for callback in dispatcher.channel.recovered_callbacks:  # what the process channel calls after re-joining
        callback()
    await settle(dispatcher)
    assert products.resyncs == idle.resyncs == ["products"] and customers.resyncs == ["customers"]
    # Events lost before the recovery are covered by its resync: the next one is no gap.
    dispatcher._on_event(message("products", 7))
    await settle(dispatcher)
    assert products.resyncs == ["products"] and stats.lost == 0 and stats.resyncs == 3


async def test_an_overflowing_queue_resyncs_the_dropped_collections_when_it_has_room_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "QUEUE_SIZE", 2)
    dispatcher = Dispatcher(ProcessChannel(InMemoryChannelLayer()))
    products = Recorder()
    dispatcher.listeners["products"].add(products)
    for seq in range(1, 6):
        dispatcher._on_event(message("products", seq))
    await settle(dispatcher)
    assert products.resyncs == [] and stats.queue_dropped == 3  # not while it is still full
    dispatcher.queue.get_nowait()
    dispatcher._on_event(message("products", 6))
    await settle(dispatcher)
    assert products.resyncs == ["products"]
    dispatcher.queue.get_nowait()
    dispatcher._on_event(message("products", 7))  # no drop since: nothing more
    await settle(dispatcher)
    assert products.resyncs == ["products"]


pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
@pytest.mark.usefixtures("clean_layer")
async def test_rest_subscriptions_get_one_resync_frame_each_after_a_gap(seeded: dict[str, int]) -> None:
    pair = await pair_for("admin@example.com")
    comm = await open_socket(f"/websockets?access_token={pair.access}")
    try:
        for request in (
            {"type": "subscribe", "collection": "products", "event": "update", "uid": "s1"},
            {"type": "subscribe", "collection": "products", "event": "delete"},
            {"type": "subscribe", "collection": "customers", "event": "update", "uid": 7},
        ):
            await comm.send_json_to(request)
            assert (await comm.receive_json_from(timeout=FRAME_WAIT))["event"] == "init"
        layer = get_channel_layer()
        products = group_name("products")
        await layer.group_send(products, message("products", 1))
        await layer.group_send(products, message("products", 3))  # 2 was lost in transit
        frames = [await comm.receive_from(timeout=FRAME_WAIT) for _ in range(2)]
        assert sorted(frames) == [
            '{"type":"subscription","event":"resync","uid":"s1"}',
            '{"type":"subscription","event":"resync"}',
        ]
        assert await comm.receive_nothing(timeout=0.3)  # not the customers subscription, and nothing twice
        assert stats.resyncs == 2
    finally:
        await comm.disconnect()


@pytestmark_db
@pytest.mark.usefixtures("clean_layer")
async def test_a_graphql_subscription_gets_a_resync_next_with_null_key_and_data(seeded: dict[str, int]) -> None:
    pair = await pair_for("editor@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=pair.access) as comm:
            await start_subscription(comm)
            for callback in get_dispatcher().channel.recovered_callbacks:
                callback()
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {
                "id": "s",
                "type": "next",
                "payload": {"data": {"products_mutated": {"key": None, "event": "resync", "data": None}}},
            }
            assert await comm.receive_nothing(timeout=0.3)  # one resync for one recovery
    assert stats.resyncs == 1
