"""Delivery (docs/FANOUT.md): an ORM write's event carries its rows as committed, and its frames are made from them
with no query at all; an event that carries no rows (``capture.publish``) costs one re-read per distinct (rights,
query) pair of its subscribers, however many subscribers share it; a delete costs none.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection

from erp_demo.models import Product
from likha_realtime.access import subscriptions as subs
from likha_realtime.events import capture
from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.events.stats import stats
from likha_realtime.events.transport import group_name
from tests.likha_realtime.support import (
    FRAME_WAIT,
    ID_SKU_PRICE,
    Roles,
    ask,
    delete,
    event,
    make,
    next_frame,
    open_socket,
    row,
    run_db,
    set_price,
    subscribe,
)
from tests.support import wait_until_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]


# -- batched re-reads ------------------------------------------------------------------------------------------


class QueryCounter:
    """An ``execute_wrapper`` that records each query and the thread that ran it."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.threads: set[int] = set()

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.queries.append(sql)
        self.threads.add(threading.get_ident())
        return execute(sql, params, many, context)


# Why this counts every delivery query and nothing else: deliveries run their re-reads through
# ``database_sync_to_async``, which (thread-sensitive, outside any ``async_to_sync``) always runs in asgiref's one
# shared executor thread, where Django keeps one connection object. The counter is installed on that connection
# through ``database_sync_to_async`` too, so it sits on exactly the connection the deliveries use, and it stays
# there when ``close_old_connections`` closes the underlying database connection between calls. It is installed
# only after every subscription is set up (so subscribe-time queries are not counted) and the write runs in
# another thread with its own connection (so the writer's queries are not counted). The thread check proves it.


async def delivery_thread_counter() -> tuple[QueryCounter, int]:
    counter = QueryCounter()

    def install() -> int:
        connection.execute_wrappers.append(counter)
        return threading.get_ident()

    return counter, await run_db(install)


async def remove_counter(counter: QueryCounter) -> None:
    def remove() -> None:
        connection.execute_wrappers.remove(counter)  # looked up in the delivery thread, like ``install``

    await run_db(remove)


def written_elsewhere(write: Any) -> Any:
    def run(*args: Any) -> Any:
        try:
            return write(*args)
        finally:
            connection.close()  # this worker thread's connection must not outlive the test

    return sync_to_async(run, thread_sensitive=False)


async def count_delivery_queries(
    sockets: list[WebsocketCommunicator], write: Any, *args: Any
) -> tuple[int, list[dict[str, Any]]]:
    counter, delivery_thread = await delivery_thread_counter()
    try:
        await written_elsewhere(write)(*args)
        frames = [await next_frame(socket) for socket in sockets]
    finally:
        await remove_counter(counter)
    assert counter.threads <= {delivery_thread}
    return len(counter.queries), frames


async def sockets_subscribed(roles: Roles, plan: list[tuple[str, dict[str, Any]]]) -> list[WebsocketCommunicator]:
    sockets = []
    for index, (role, query) in enumerate(plan):
        socket = await open_socket(roles.path(role))
        await subscribe(socket, query=query, uid=f"s{index}")
        sockets.append(socket)
    return sockets


def announce_price(key: int, price: str) -> None:
    """A write the capture does not see (``QuerySet.update``), announced with ``capture.publish``: keys only."""
    Product.objects.filter(pk=key).update(price=Decimal(price))
    capture.publish(Product, "update", [key])


# ORM writes: frames from the committed rows, no query; announced writes: one re-read per distinct read.
WRITES = [pytest.param(set_price, 0, id="orm-save"), pytest.param(announce_price, 1, id="announced")]


@pytest.mark.parametrize("subscribers", [1, 20])
@pytest.mark.parametrize(("write", "reads"), WRITES)
async def test_subscribers_sharing_rights_and_query_cost_one_read_per_event(
    roles: Roles, subscribers: int, write: Any, reads: int
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    # The admin and the editor read products identically (every row, every field): they share the batch.
    plan = [("admin" if index % 2 else "editor", ID_SKU_PRICE) for index in range(subscribers)]
    sockets = await sockets_subscribed(roles, plan)
    before = stats.as_dict()

    queries, frames = await count_delivery_queries(sockets, write, keys["A-1"], "3.33")

    assert queries == reads
    assert (stats.rereads - before["rereads"], stats.committed_reads - before["committed_reads"]) == (reads, 1 - reads)
    assert frames == [event("update", [row(keys["A-1"], "A-1", "3.33")], uid=f"s{i}") for i in range(subscribers)]
    for socket in sockets:
        await socket.disconnect()


@pytest.mark.parametrize(("write", "reads"), WRITES)
async def test_subscribers_cost_one_read_per_distinct_read_whoever_they_are(
    roles: Roles, write: Any, reads: int
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    queries = [{"fields": ["id"]}, {"fields": ["sku"]}, {"fields": ["price"]}, {"fields": ["id"], "sort": ["-price"]}]
    # 4 queries × 5 editors, plus 4 public subscribers of the first query: the public role reads products' ids
    # with the same SQL as an editor (no row rule), so they share that read; "*" would not (other fields).
    plan = [("editor", queries[index % 4]) for index in range(20)] + [("public", queries[0])] * 4
    plan += [("editor", {"fields": ["*"]}), ("public", {"fields": ["*"]})]
    sockets = await sockets_subscribed(roles, plan)

    count, frames = await count_delivery_queries(sockets, write, keys["A-1"], "3.33")

    assert count == 6 * reads
    assert [frame["data"] for frame in frames[:4]] == [
        [{"id": keys["A-1"]}],
        [{"sku": "A-1"}],
        [{"price": "3.33"}],
        [{"id": keys["A-1"]}],
    ]
    assert len(frames) == 26 and all(frame["event"] == "update" for frame in frames)
    assert "stock" in frames[24]["data"][0] and "stock" not in frames[25]["data"][0]
    for socket in sockets:
        await socket.disconnect()


async def test_a_delete_costs_no_read_at_all_whatever_the_subscriber_count(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    plan = [("editor", {"fields": ["id"], "filter": {"sku": {"_starts_with": "A"}}})] * 10 + [("public", {})] * 10
    sockets = await sockets_subscribed(roles, plan)

    count, frames = await count_delivery_queries(sockets, delete, keys["A-1"])

    assert count == 0
    assert frames == [event("delete", [keys["A-1"]], uid=f"s{i}") for i in range(20)]
    for socket in sockets:
        await socket.disconnect()


# -- the collection's group is joined before the init ----------------------------------------------------------


async def test_a_first_subscriber_is_in_its_collections_group_before_its_init_is_sent(
    comm: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server process's events reach this one only through the collection's group: a subscriber whose init
    went out before this process joined it would miss a write made on another server right after its init."""
    layer = get_channel_layer()
    joining, joined = asyncio.Event(), asyncio.Event()
    group_add = layer.group_add

    async def held_join(group: str, channel: str) -> None:
        if group == group_name("products"):
            joining.set()
            await joined.wait()
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", held_join)
    await comm.send_json_to({"type": "subscribe", "collection": "products", "query": {"fields": ["id"]}, "uid": "p"})
    await asyncio.wait_for(joining.wait(), FRAME_WAIT)
    assert comm.output_queue.empty()  # the init waits for the join
    joined.set()
    assert (await next_frame(comm))["event"] == "init"


async def test_a_subscription_to_no_registered_collection_joins_no_group(comm: WebsocketCommunicator) -> None:
    """A hostile client cannot make a server process join (and keep refreshing) groups of names it makes up."""
    dispatcher = get_dispatcher()
    before = set(dispatcher.channel.groups)
    reply = await ask(comm, {"type": "subscribe", "collection": "made_up_1", "uid": "x"})
    assert (reply["status"], reply["error"]["code"], reply["uid"]) == ("error", "FORBIDDEN", "x"), reply
    assert set(dispatcher.channel.groups) == before


async def test_a_write_committed_after_the_init_read_reaches_the_new_subscription(
    comm: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The init shows the rows as its read found them; a write committed after that read, and received while the
    init was still on its way (a busy process: the delivery worker runs), comes as an event frame after the init."""
    keys = await run_db(make, ("W-1", "1.00"))
    await subscribe(comm, query={"fields": ["id"]}, uid="other", collection="customers")
    read, go_on = threading.Event(), threading.Event()
    init_frame = subs.init_frame

    def read_then_wait(subscription: Any) -> dict[str, Any]:
        frame = init_frame(subscription)
        read.set()
        go_on.wait(FRAME_WAIT)
        return frame

    monkeypatch.setattr(subs, "init_frame", read_then_wait)
    await comm.send_json_to({"type": "subscribe", "collection": "products", "query": {"fields": ["id", "price"]}})
    assert await asyncio.to_thread(read.wait, FRAME_WAIT)
    received = stats.received

    def write() -> None:  # in a thread of its own: the database thread is held by the subscribe
        set_price(keys["W-1"], "2.00")
        connection.close()

    await asyncio.to_thread(write)
    queue = get_dispatcher().queue
    await wait_until_async(lambda: stats.received > received and queue.empty(), FRAME_WAIT)  # the worker took it
    go_on.set()
    assert await next_frame(comm) == {
        "type": "subscription",
        "event": "init",
        "data": [{"id": keys["W-1"], "price": "1.00"}],
    }
    assert await next_frame(comm) == {
        "type": "subscription",
        "event": "update",
        "data": [{"id": keys["W-1"], "price": "2.00"}],
    }
