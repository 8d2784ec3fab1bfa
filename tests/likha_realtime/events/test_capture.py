"""Event capture (PROTOCOL §5): what a write publishes, seen by a subscriber. Only committed rows, one frame per write
operation (a transaction, a many-row create, update or delete), and ``publish()`` for writes without signals.

"Nothing arrives" is never asserted by waiting alone: a later write that the subscription does hear (a fence)
must be the next frame, since one process delivers the events of one collection in publication order.
"""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection, transaction

from erp_demo.models import Product
from likha_realtime.events import publish
from tests.likha_realtime.support import (
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

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]


# -- transactions ----------------------------------------------------------------------------------------------


class Rollback(Exception):
    pass


def rolled_back(keys: dict[str, int]) -> None:
    try:
        with transaction.atomic():
            set_price(keys["A-1"], "1.11")
            Product.objects.create(sku="GHOST", name="Never committed")
            delete(keys["A-2"])
            raise Rollback
    except Rollback:
        pass


async def test_a_rolled_back_write_sends_nothing(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    await subscribe(comm, query=ID_SKU_PRICE, uid="s")

    await run_db(rolled_back, keys)
    await run_db(set_price, keys["A-2"], "4.50")

    assert await next_frame(comm) == event("update", [row(keys["A-2"], "A-2", "4.50")], uid="s")


def committed(keys: dict[str, int]) -> None:
    with transaction.atomic():
        set_price(keys["A-1"], "3.10")
        set_price(keys["A-1"], "3.20")  # the same row twice in one transaction: one row in one frame


async def test_a_committed_write_sends_exactly_one_frame_per_matching_subscription(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("B-1", "4.00"))
    first = await open_socket(roles.path("editor"))
    second = await open_socket(roles.path("admin"))
    await subscribe(first, query=ID_SKU_PRICE, uid="all")
    await subscribe(first, query={"fields": ["sku"], "filter": {"sku": {"_eq": "A-1"}}}, uid="a1")
    await subscribe(first, query={"fields": ["sku"], "filter": {"sku": {"_eq": "B-1"}}}, uid="b1")
    await subscribe(second, query={"fields": ["price"]}, uid="other")

    await run_db(committed, keys)
    await run_db(set_price, keys["B-1"], "4.40")  # the fence

    def by_uid(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(frames, key=lambda frame: frame["uid"])

    assert by_uid([await next_frame(first), await next_frame(first)]) == [
        event("update", [{"sku": "A-1"}], uid="a1"),
        event("update", [row(keys["A-1"], "A-1", "3.20")], uid="all"),
    ]
    assert by_uid([await next_frame(first), await next_frame(first)]) == [
        event("update", [row(keys["B-1"], "B-1", "4.40")], uid="all"),
        event("update", [{"sku": "B-1"}], uid="b1"),
    ]
    assert await next_frame(second) == event("update", [{"price": "3.20"}], uid="other")
    assert await next_frame(second) == event("update", [{"price": "4.40"}], uid="other")
    await first.disconnect()
    await second.disconnect()


def savepoint_rolled_back(keys: dict[str, int]) -> None:
    with transaction.atomic():
        set_price(keys["A-1"], "3.30")
        try:
            with transaction.atomic():
                set_price(keys["A-2"], "0.01")
                raise Rollback
        except Rollback:
            pass
        set_price(keys["A-3"], "5.30")


async def test_a_rolled_back_savepoint_inside_a_committed_transaction_sends_only_the_committed_rows(
    comm: WebsocketCommunicator,
) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    await subscribe(comm, query=ID_SKU_PRICE, uid="s")

    await run_db(savepoint_rolled_back, keys)

    assert await next_frame(comm) == event(
        "update", [row(keys["A-1"], "A-1", "3.30"), row(keys["A-3"], "A-3", "5.30")], uid="s"
    )
    assert await comm.receive_nothing(timeout=0.3)


# -- one frame per write operation -----------------------------------------------------------------------------


async def test_an_items_update_with_ids_is_one_frame_listing_every_row(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    watcher = await open_socket(roles.path("public"))
    writer = await open_socket(roles.path("editor"))
    await subscribe(watcher, query=ID_SKU_PRICE, uid="w")

    ids = [keys["A-3"], keys["A-1"], keys["A-2"]]
    message = {"type": "items", "action": "update", "collection": "products", "ids": ids, "data": {"price": "2.00"}}
    reply = await ask(writer, {**message, "query": {"fields": ["id"]}})
    await run_db(set_price, keys["A-1"], "2.50")  # the fence

    assert reply == {"type": "items", "data": [{"id": key} for key in sorted(ids)]}
    assert await next_frame(watcher) == event(
        "update", [row(keys[sku], sku, "2.00") for sku in ("A-1", "A-2", "A-3")], uid="w"
    )
    assert await next_frame(watcher) == event("update", [row(keys["A-1"], "A-1", "2.50")], uid="w")
    await watcher.disconnect()
    await writer.disconnect()


async def test_an_items_create_of_many_is_one_frame_listing_every_row(roles: Roles) -> None:
    watcher = await open_socket(roles.path("public"))
    writer = await open_socket(roles.path("editor"))
    await subscribe(watcher, query={"fields": ["sku", "price"]}, uid="w")
    data = [{"name": "One", "sku": "N-1", "price": "1.00"}, {"name": "Two", "sku": "N-2", "price": "2.00"}]

    reply = await ask(writer, {"type": "items", "action": "create", "collection": "products", "data": data})
    await run_db(lambda: Product.objects.create(name="Three", sku="N-3", price=Decimal("3.00")))  # the fence

    assert [item["sku"] for item in reply["data"]] == ["N-1", "N-2"]
    assert await next_frame(watcher) == event(
        "create", [{"sku": "N-1", "price": "1.00"}, {"sku": "N-2", "price": "2.00"}], uid="w"
    )
    assert await next_frame(watcher) == event("create", [{"sku": "N-3", "price": "3.00"}], uid="w")
    await watcher.disconnect()
    await writer.disconnect()


def bulk_delete(keys: list[int]) -> None:
    assert Product.objects.filter(pk__in=keys).delete()[0] == len(keys)


@pytest.mark.parametrize("how", ["queryset", "items-ids", "items-query"])
async def test_a_multi_row_delete_is_one_frame_listing_every_key(roles: Roles, how: str) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"), ("B-1", "6.00"))
    watcher = await open_socket(roles.path("public"))
    admin = await open_socket(roles.path("admin"))
    await subscribe(watcher, query={"fields": ["id"]}, uid="w")
    doomed = [keys["A-1"], keys["A-2"], keys["A-3"]]

    if how == "queryset":
        await run_db(bulk_delete, doomed)
    else:
        selector = {"ids": doomed} if how == "items-ids" else {"query": {"filter": {"sku": {"_starts_with": "A-"}}}}
        reply = await ask(admin, {"type": "items", "action": "delete", "collection": "products", **selector})
        assert reply == {"type": "items", "data": doomed}
    await run_db(delete, keys["B-1"])  # the fence

    deleted = await next_frame(watcher)
    assert {**deleted, "data": sorted(deleted["data"])} == event("delete", doomed, uid="w")  # in deletion order
    assert await next_frame(watcher) == event("delete", [keys["B-1"]], uid="w")
    await watcher.disconnect()
    await admin.disconnect()


# -- the publish call ------------------------------------------------------------------------------------------


def bulk_update_and_publish(keys: list[int], announce: bool) -> None:
    with transaction.atomic():
        Product.objects.filter(pk__in=keys).update(price=Decimal("0.99"))
        if announce:
            publish("products", "update", keys)


async def test_publish_after_a_queryset_update_delivers_one_frame(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("B-1", "5.00"))
    await subscribe(comm, query={**ID_SKU_PRICE, "filter": {"sku": {"_starts_with": "A-"}}}, uid="s")

    await run_db(bulk_update_and_publish, [keys["A-1"]], False)  # QuerySet.update alone sends no signal
    await run_db(bulk_update_and_publish, list(keys.values()), True)

    assert await next_frame(comm) == event(
        "update", [row(keys["A-1"], "A-1", "0.99"), row(keys["A-2"], "A-2", "0.99")], uid="s"
    )
    assert await comm.receive_nothing(timeout=0.3)


async def test_publish_accepts_the_model_and_sends_nothing_when_rolled_back(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    await subscribe(comm, query={"fields": ["id"]}, uid="s")

    def published_then_rolled_back() -> None:
        try:
            with transaction.atomic():
                publish(Product, "update", [keys["A-1"]])
                raise Rollback
        except Rollback:
            pass

    await run_db(published_then_rolled_back)
    await run_db(publish, Product, "create", [keys["A-1"]])

    assert await next_frame(comm) == event("create", [{"id": keys["A-1"]}], uid="s")


def raw_delete_and_publish(key: int) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Product._meta.db_table} WHERE id = %s", [key])
        publish("products", "delete", [key])


async def test_a_published_delete_reaches_only_subscriptions_without_conditions(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    plain = await open_socket(roles.path("editor"))
    filtered = await open_socket(roles.path("editor"))
    await subscribe(plain, query={"fields": ["id"]}, uid="plain")
    await subscribe(filtered, query={"filter": {"sku": {"_starts_with": "A-"}}}, uid="filtered")

    await run_db(raw_delete_and_publish, keys["A-1"])  # keys only: the filter cannot be checked
    await run_db(delete, keys["A-2"])  # the fence, through the ORM (with its row values)

    assert await next_frame(plain) == event("delete", [keys["A-1"]], uid="plain")
    assert await next_frame(plain) == event("delete", [keys["A-2"]], uid="plain")
    assert await next_frame(filtered) == event("delete", [keys["A-2"]], uid="filtered")
    await plain.disconnect()
    await filtered.disconnect()


def test_publish_refuses_unknown_collections_and_actions() -> None:
    with pytest.raises(LookupError, match="'nope' is not a registered collection"):
        publish("nope", "update", [1])
    with pytest.raises(ValueError, match="action must be one of"):
        publish("products", "upsert", [1])


async def test_the_restock_batch_job_reaches_subscribers_as_one_update(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("B-1", "5.00"))
    await subscribe(comm, query={"fields": ["sku", "stock"]}, uid="s")

    await run_db(call_command, "restock", sku=["A-1", "A-2"], add=5, stdout=StringIO())
    await run_db(set_price, keys["B-1"], "5.50")  # the fence

    assert await next_frame(comm) == event("update", [{"sku": "A-1", "stock": 5}, {"sku": "A-2", "stock": 5}], uid="s")
    assert await next_frame(comm) == event("update", [{"sku": "B-1", "stock": 0}], uid="s")
