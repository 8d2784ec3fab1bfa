"""Subscriptions of the REST socket (PROTOCOL §5): every frame shape, uid rules, queries, transactions, batching.

"Nothing arrives" is never asserted by waiting alone: a later write that the subscription does hear (a fence)
must be the next frame, since one process delivers the events of one collection in publication order.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection, transaction

from erp_demo.models import Product
from likha_realtime.events import publish
from tests.likha_realtime.support import Roles, ask, error, no_access, open_socket, run_db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

ID_SKU_PRICE = {"fields": ["id", "sku", "price"]}


def make(*rows: tuple[str, str]) -> dict[str, int]:
    """Products by ``(sku, price)``, named after their SKU; returns sku -> key."""
    return {sku: Product.objects.create(sku=sku, name=f"Product {sku}", price=Decimal(price)).pk for sku, price in rows}


def set_price(key: int, price: str) -> None:
    product = Product.objects.get(pk=key)
    product.price = Decimal(price)
    product.save()


def delete(key: int) -> None:
    Product.objects.get(pk=key).delete()


async def subscribe(comm: WebsocketCommunicator, **message: Any) -> dict[str, Any]:
    init = await ask(comm, {"type": "subscribe", "collection": "products", **message})
    assert (init.get("type"), init.get("event")) == ("subscription", "init"), init
    return init


async def next_frame(comm: WebsocketCommunicator) -> dict[str, Any]:
    return await comm.receive_json_from(timeout=3)


def row(key: int, sku: str, price: str) -> dict[str, Any]:
    return {"id": key, "sku": sku, "price": price}


def event(action: str, data: Any, **uid: Any) -> dict[str, Any]:
    return {"type": "subscription", "event": action, "data": data, **uid}


@pytest.fixture
async def comm(roles: Roles) -> Any:
    socket = await open_socket(roles.path("editor"))
    yield socket
    await socket.disconnect()


# -- init ------------------------------------------------------------------------------------------------------


async def test_a_subscription_without_event_starts_with_the_rows_its_query_selects(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "1.50"), ("B-1", "9.00"))
    query = {**ID_SKU_PRICE, "filter": {"sku": {"_starts_with": "A-"}}, "sort": ["-price"]}

    init = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "s1"})

    assert init == event("init", [row(keys["A-1"], "A-1", "3.00"), row(keys["A-2"], "A-2", "1.50")], uid="s1")
    assert list(init) == ["type", "event", "data", "uid"]


@pytest.mark.parametrize("meta", [["total_count", "filter_count"], "*", "total_count,filter_count"])
async def test_init_carries_meta_when_the_query_asks_for_it(comm: WebsocketCommunicator, meta: Any) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "1.50"), ("B-1", "9.00"))
    query = {"fields": ["id"], "filter": {"sku": {"_starts_with": "A-"}}, "limit": 1, "meta": meta}

    init = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "s1"})

    assert init == {
        "type": "subscription",
        "event": "init",
        "data": [{"id": keys["A-1"]}],
        "meta": {"total_count": 3, "filter_count": 2},
        "uid": "s1",
    }
    assert list(init) == ["type", "event", "data", "meta", "uid"]


async def test_init_has_no_meta_unless_asked(comm: WebsocketCommunicator) -> None:
    await run_db(make, ("A-1", "3.00"))
    init = await ask(comm, {"type": "subscribe", "collection": "products", "query": {"fields": "id"}, "uid": "s"})
    assert "meta" not in init


@pytest.mark.parametrize("action", ["create", "update", "delete"])
async def test_a_subscription_with_an_event_gets_an_init_without_data(comm: WebsocketCommunicator, action: str) -> None:
    await run_db(make, ("A-1", "3.00"))
    message = {"type": "subscribe", "collection": "products", "event": action, "query": ID_SKU_PRICE, "uid": "s2"}
    assert await ask(comm, message) == {"type": "subscription", "event": "init", "uid": "s2"}


@pytest.mark.parametrize(("sent", "echoed"), [(7, "7"), (1.5, "1.5"), ("s1", "s1"), ("", "")])
async def test_the_uid_comes_back_as_a_string_on_every_subscription_frame(
    comm: WebsocketCommunicator, sent: Any, echoed: str
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    init = await subscribe(comm, query=ID_SKU_PRICE, uid=sent)
    await run_db(set_price, keys["A-1"], "4.00")
    update = await next_frame(comm)
    unsubscribed = await ask(comm, {"type": "unsubscribe", "uid": sent})

    assert init["uid"] == echoed
    assert update == event("update", [row(keys["A-1"], "A-1", "4.00")], uid=echoed)
    assert unsubscribed == {"type": "subscription", "event": "unsubscribe", "uid": echoed}


async def test_frames_of_a_subscription_without_uid_carry_none(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    init = await subscribe(comm, query=ID_SKU_PRICE)
    await run_db(set_price, keys["A-1"], "4.00")
    assert init == event("init", [row(keys["A-1"], "A-1", "3.00")])
    assert await next_frame(comm) == event("update", [row(keys["A-1"], "A-1", "4.00")])


# -- events ----------------------------------------------------------------------------------------------------


async def test_create_update_and_delete_frames_carry_rows_then_keys(comm: WebsocketCommunicator) -> None:
    await subscribe(comm, query=ID_SKU_PRICE, uid="s1")

    keys = await run_db(make, ("A-1", "3.00"))
    key = keys["A-1"]
    created = await next_frame(comm)
    await run_db(set_price, key, "3.50")
    updated = await next_frame(comm)
    await run_db(delete, key)
    deleted = await next_frame(comm)

    assert created == event("create", [row(key, "A-1", "3.00")], uid="s1")
    assert updated == event("update", [row(key, "A-1", "3.50")], uid="s1")
    assert deleted == event("delete", [key], uid="s1")
    assert [list(frame) for frame in (created, updated, deleted)] == [["type", "event", "data", "uid"]] * 3


async def test_an_event_subscription_hears_only_its_action(comm: WebsocketCommunicator) -> None:
    await subscribe(comm, event="update", query=ID_SKU_PRICE, uid="u")
    keys = await run_db(make, ("A-1", "3.00"))  # a create: not for this subscription
    await run_db(set_price, keys["A-1"], "5.00")
    await run_db(delete, keys["A-1"])
    assert await next_frame(comm) == event("update", [row(keys["A-1"], "A-1", "5.00")], uid="u")
    assert await comm.receive_nothing(timeout=0.3)


async def test_each_subscriber_gets_rows_shaped_by_its_own_fields_and_filter(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("B-1", "4.00"))
    names = await open_socket(roles.path("editor"))
    prices = await open_socket(roles.path("public"))
    await subscribe(names, query={"fields": "id,name"}, uid="n")
    await subscribe(prices, query={"fields": ["sku", "price"], "filter": {"sku": {"_eq": "B-1"}}}, uid="p")

    await run_db(lambda: Product.objects.filter(pk__in=keys.values()).update(price=Decimal("7.00")))
    await run_db(publish, "products", "update", [keys["A-1"], keys["B-1"]])

    assert await next_frame(names) == event(
        "update", [{"id": keys["A-1"], "name": "Product A-1"}, {"id": keys["B-1"], "name": "Product B-1"}], uid="n"
    )
    assert await next_frame(prices) == event("update", [{"sku": "B-1", "price": "7.00"}], uid="p")
    await names.disconnect()
    await prices.disconnect()


async def test_a_delete_reaches_only_subscribers_whose_filter_matched_the_row(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("B-1", "4.00"))
    a_side = await open_socket(roles.path("editor"))
    b_side = await open_socket(roles.path("editor"))
    await subscribe(a_side, query={"filter": {"sku": {"_eq": "A-1"}}}, uid="a")
    await subscribe(b_side, query={"filter": {"price": {"_gte": 4}}}, uid="b")

    await run_db(delete, keys["A-1"])
    await run_db(delete, keys["B-1"])  # the fence of b_side

    assert await next_frame(a_side) == event("delete", [keys["A-1"]], uid="a")
    assert await next_frame(b_side) == event("delete", [keys["B-1"]], uid="b")
    await a_side.disconnect()
    await b_side.disconnect()


async def test_an_update_is_sent_only_while_the_row_matches_the_filter(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "9.00"))
    await subscribe(comm, query={**ID_SKU_PRICE, "filter": {"price": {"_lt": 5}}}, uid="cheap")

    await run_db(set_price, keys["A-2"], "2.00")  # moves into the filter
    moved_in = await next_frame(comm)
    await run_db(set_price, keys["A-1"], "8.00")  # moves out: nothing remains to send
    await run_db(set_price, keys["A-2"], "1.00")  # the fence

    assert moved_in == event("update", [row(keys["A-2"], "A-2", "2.00")], uid="cheap")
    assert await next_frame(comm) == event("update", [row(keys["A-2"], "A-2", "1.00")], uid="cheap")


# -- item subscriptions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spell", [lambda key: key, str, lambda key: f"00{key}"], ids=["numeric-item", "string-item", "zero-padded-item"]
)
async def test_an_item_subscription_gets_objects_and_matches_numeric_and_string_keys(
    comm: WebsocketCommunicator, spell: Any
) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    key = keys["A-1"]
    item = spell(key)

    init = await subscribe(comm, item=item, query=ID_SKU_PRICE, uid="i")
    await run_db(set_price, keys["A-2"], "5.00")  # another row: not for this subscription
    await run_db(set_price, key, "3.25")
    updated = await next_frame(comm)
    await run_db(delete, key)
    deleted = await next_frame(comm)

    assert init == event("init", row(key, "A-1", "3.00"), uid="i")
    assert updated == event("update", row(key, "A-1", "3.25"), uid="i")
    assert deleted == event("delete", key, uid="i")


async def test_an_item_subscription_hears_its_row_within_a_multi_row_event(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    watcher = await open_socket(roles.path("public"))
    writer = await open_socket(roles.path("editor"))
    await subscribe(watcher, item=str(keys["A-2"]), query={"fields": ["sku"]}, uid="i")
    message = {"type": "items", "action": "update", "collection": "products", "ids": list(keys.values())}
    await ask(writer, {**message, "data": {"name": "Same"}, "query": {"fields": ["id"]}})
    assert await next_frame(watcher) == event("update", {"sku": "A-2"}, uid="i")
    await watcher.disconnect()
    await writer.disconnect()


async def test_an_item_subscription_to_a_missing_row_starts_with_null(comm: WebsocketCommunicator) -> None:
    assert await ask(comm, {"type": "subscribe", "collection": "products", "item": "999999", "uid": "i"}) == event(
        "init", None, uid="i"
    )


# -- unsubscribe -----------------------------------------------------------------------------------------------


async def test_unsubscribe_with_a_uid_stops_only_that_subscription(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    await subscribe(comm, query={"fields": ["id"]}, uid="gone")
    await subscribe(comm, query={"fields": ["sku"]}, uid="kept")

    assert await ask(comm, {"type": "unsubscribe", "uid": "gone"}) == {
        "type": "subscription",
        "event": "unsubscribe",
        "uid": "gone",
    }
    await run_db(set_price, keys["A-1"], "1.00")
    assert await next_frame(comm) == event("update", [{"sku": "A-1"}], uid="kept")
    assert await comm.receive_nothing(timeout=0.3)


async def test_unsubscribe_without_uid_removes_every_subscription_of_the_connection(
    comm: WebsocketCommunicator,
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    await subscribe(comm, query={"fields": ["id"]}, uid="one")
    await subscribe(comm, query={"fields": ["sku"]})
    await subscribe(comm, event="update", uid="two")

    assert await ask(comm, {"type": "unsubscribe"}) == {"type": "subscription", "event": "unsubscribe"}
    await run_db(set_price, keys["A-1"], "1.00")  # heard by nobody
    await subscribe(comm, query={"fields": ["price"]}, uid="fresh")
    await run_db(set_price, keys["A-1"], "2.00")
    assert await next_frame(comm) == event("update", [{"price": "2.00"}], uid="fresh")


async def test_a_closed_socket_stops_listening_even_after_unsubscribing(roles: Roles) -> None:
    from likha_realtime.events.fanout import get_dispatcher

    listeners = get_dispatcher().listeners
    comm = await open_socket(roles.path("editor"))
    await subscribe(comm, uid="a")
    await ask(comm, {"type": "subscribe", "collection": "customers", "uid": "a"})  # replaces the products one
    assert await ask(comm, {"type": "unsubscribe"}) == {"type": "subscription", "event": "unsubscribe"}
    assert (len(listeners["products"]), len(listeners["customers"])) == (1, 1)

    await comm.disconnect()

    assert (len(listeners["products"]), len(listeners["customers"])) == (0, 0)


# -- the same uid again ----------------------------------------------------------------------------------------


async def test_the_same_uid_again_replaces_the_subscription(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("B-1", "4.00"))
    await subscribe(comm, query={"fields": ["sku"], "filter": {"sku": {"_eq": "A-1"}}}, uid="s")
    init = await subscribe(comm, query={"fields": ["id"], "filter": {"price": {"_gt": 1}}}, uid="s")

    await run_db(set_price, keys["A-1"], "3.50")  # matches both queries: heard once, shaped by the new one
    await run_db(set_price, keys["B-1"], "4.50")

    assert init == event("init", [{"id": keys["A-1"]}, {"id": keys["B-1"]}], uid="s")
    assert await next_frame(comm) == event("update", [{"id": keys["A-1"]}], uid="s")
    assert await next_frame(comm) == event("update", [{"id": keys["B-1"]}], uid="s")


INVALID_RESUBSCRIBES = [
    pytest.param(
        {"query": {"fields": ["nope"]}},
        error("subscribe", "INVALID_QUERY", 'Unknown field "nope" in collection "products".', uid="s"),
        id="unknown-field",
    ),
    pytest.param(
        {"query": {"filter": {"price": {"_like": 1}}}},
        error(
            "subscribe",
            "INVALID_QUERY",
            'Unknown operator "_like" on "price"; expected one of _eq, _neq, _lt, _lte, _gt, _gte, _in, _nin, _null, '
            "_nnull, _contains, _ncontains, _icontains, _starts_with, _ends_with, _between.",
            uid="s",
        ),
        id="unknown-operator",
    ),
    pytest.param(
        {"collection": "customers_archive"},
        error("subscribe", "FORBIDDEN", no_access("customers_archive"), uid="s"),
        id="unknown-collection",
    ),
    pytest.param(
        {"event": "upsert"},
        error(
            "subscribe",
            "INVALID_PAYLOAD",
            'Validation error: "event" must be one of "create", "update", "delete".',
            uid="s",
        ),
        id="bad-event",
    ),
]


@pytest.mark.parametrize(("change", "expected"), INVALID_RESUBSCRIBES)
async def test_an_invalid_subscribe_with_the_same_uid_keeps_the_old_subscription(
    comm: WebsocketCommunicator, change: dict[str, Any], expected: dict[str, Any]
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    await subscribe(comm, query={"fields": ["sku", "price"]}, uid="s")

    assert await ask(comm, {"type": "subscribe", "collection": "products", "uid": "s", **change}) == expected
    await run_db(set_price, keys["A-1"], "6.00")
    assert await next_frame(comm) == event("update", [{"sku": "A-1", "price": "6.00"}], uid="s")


# -- queries ---------------------------------------------------------------------------------------------------


async def test_the_string_query_forms_that_sdks_send_work(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "8.00"), ("A-3", "5.00"), ("B-1", "99.00"))
    query = {"fields": "id,name", "filter": '{"sku":{"_starts_with":"A-"}}', "sort": "-price", "limit": "2"}

    init = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "sdk"})
    await run_db(set_price, keys["A-3"], "5.50")
    await run_db(set_price, keys["B-1"], "98.00")  # outside the filter
    await run_db(set_price, keys["A-1"], "3.50")

    assert init == event(
        "init", [{"id": keys["A-2"], "name": "Product A-2"}, {"id": keys["A-3"], "name": "Product A-3"}], uid="sdk"
    )
    assert await next_frame(comm) == event("update", [{"id": keys["A-3"], "name": "Product A-3"}], uid="sdk")
    # The limit windows the init read, not the events: A-1 is outside the first two rows and still matches the filter.
    assert await next_frame(comm) == event("update", [{"id": keys["A-1"], "name": "Product A-1"}], uid="sdk")


UNKNOWN_OPERATOR = (
    'Unknown operator "_like" on "name"; expected one of _eq, _neq, _lt, _lte, _gt, _gte, _in, _nin, _null, _nnull, '
    "_contains, _ncontains, _icontains, _starts_with, _ends_with, _between."
)
INVALID_QUERIES = [
    pytest.param({"fields": ["nope"]}, 'Unknown field "nope" in collection "products".', id="unknown-field"),
    pytest.param({"fields": "id,nope"}, 'Unknown field "nope" in collection "products".', id="unknown-field-string"),
    pytest.param(
        {"fields": ["sku.name"]}, 'Field "sku" of collection "products" is not a relation.', id="not-relation"
    ),
    pytest.param({"filter": {"nope": {"_eq": 1}}}, 'Unknown field "nope" in collection "products".', id="filter-field"),
    pytest.param(
        {"filter": '{"nope":{"_eq":1}}'}, 'Unknown field "nope" in collection "products".', id="filter-field-text"
    ),
    pytest.param({"filter": {"name": {"_like": "x"}}}, UNKNOWN_OPERATOR, id="unknown-operator"),
    pytest.param(
        {"filter": "{not json"}, '"filter" must be a JSON object, received text that is not valid JSON.', id="bad-json"
    ),
    pytest.param({"sort": ["nope"]}, 'Unknown field "nope" in collection "products".', id="sort-field"),
    pytest.param({"sort": "-nope"}, 'Unknown field "nope" in collection "products".', id="sort-field-string"),
    pytest.param({"limit": "ten"}, '"limit" must be an integer, received "ten".', id="limit-text"),
    pytest.param(
        {"colour": "red"},
        'Unknown query parameter "colour"; expected one of fields, filter, sort, limit, offset, page, meta.',
        id="unknown-key",
    ),
]


@pytest.mark.parametrize(("query", "message"), INVALID_QUERIES)
async def test_unknown_fields_and_operators_are_invalid_query(
    comm: WebsocketCommunicator, query: dict[str, Any], message: str
) -> None:
    reply = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "q"})
    assert reply == error("subscribe", "INVALID_QUERY", message, uid="q")


@pytest.mark.parametrize(
    "query",
    [
        {"filter": {"customer": {"nope": {"_eq": 1}}}},
        {"filter": {"customer.nope": {"_eq": 1}}},
        {"fields": ["id", "customer.nope"]},
        {"sort": ["customer.nope"]},
    ],
    ids=["nested-filter", "dotted-filter", "dotted-field", "dotted-sort"],
)
async def test_an_unknown_field_of_a_related_collection_is_named_by_that_collection(
    comm: WebsocketCommunicator, query: dict[str, Any]
) -> None:
    reply = await ask(comm, {"type": "subscribe", "collection": "sales_orders", "query": query, "uid": "q"})
    assert reply == error("subscribe", "INVALID_QUERY", 'Unknown field "nope" in collection "customers".', uid="q")


INVALID_SUBSCRIBES = [
    pytest.param({}, 'Validation error: "collection" must be a non-empty string.', id="no-collection"),
    pytest.param({"collection": ""}, 'Validation error: "collection" must be a non-empty string.', id="empty"),
    pytest.param({"collection": 5}, 'Validation error: "collection" must be a non-empty string.', id="number"),
    pytest.param(
        {"collection": "products", "event": "upsert"},
        'Validation error: "event" must be one of "create", "update", "delete".',
        id="bad-event",
    ),
    pytest.param(
        {"collection": "products", "item": True},
        'Validation error: "item" must be a string or an integer key.',
        id="boolean-item",
    ),
    pytest.param(
        {"collection": "products", "item": [1]},
        'Validation error: "item" must be a string or an integer key.',
        id="list-item",
    ),
    pytest.param({"collection": "products", "item": "abc"}, 'Invalid key "abc".', id="text-item"),
    pytest.param(
        {"collection": "products", "item": 10**20}, 'Invalid key "100000000000000000000".', id="item-beyond-range"
    ),
    pytest.param(
        {"collection": "products", "query": "fields=id"},
        'Validation error: "query" must be an object.',
        id="query-text",
    ),
]


@pytest.mark.parametrize(("fields", "message"), INVALID_SUBSCRIBES)
async def test_a_malformed_subscribe_is_invalid_payload_with_the_uid(
    comm: WebsocketCommunicator, fields: dict[str, Any], message: str
) -> None:
    assert await ask(comm, {"type": "subscribe", **fields, "uid": "x"}) == error(
        "subscribe", "INVALID_PAYLOAD", message, uid="x"
    )


@pytest.mark.parametrize("action", [None, "create", "update", "delete"])
async def test_subscribing_without_read_permission_is_forbidden_with_or_without_event(
    roles: Roles, action: str | None
) -> None:
    comm = await open_socket(roles.path("public"))
    message = {"type": "subscribe", "collection": "customers", "uid": "c"}
    if action is not None:
        message["event"] = action
    assert await ask(comm, message) == error("subscribe", "FORBIDDEN", no_access("customers"), uid="c")
    await comm.disconnect()


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


@pytest.mark.parametrize("subscribers", [1, 20])
async def test_subscribers_sharing_rights_and_query_cost_one_read_per_event(roles: Roles, subscribers: int) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    # The admin and the editor read products identically (every row, every field): they share the batch.
    plan = [("admin" if index % 2 else "editor", ID_SKU_PRICE) for index in range(subscribers)]
    sockets = await sockets_subscribed(roles, plan)

    queries, frames = await count_delivery_queries(sockets, set_price, keys["A-1"], "3.33")

    assert queries == 1
    assert frames == [event("update", [row(keys["A-1"], "A-1", "3.33")], uid=f"s{i}") for i in range(subscribers)]
    for socket in sockets:
        await socket.disconnect()


async def test_subscribers_with_different_queries_or_rights_cost_one_read_per_distinct_pair(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    queries = [{"fields": ["id"]}, {"fields": ["sku"]}, {"fields": ["price"]}, {"fields": ["id"], "sort": ["-price"]}]
    # 4 queries × 5 editors, plus 4 public subscribers of the first query (other fields readable: another batch).
    plan = [("editor", queries[index % 4]) for index in range(20)] + [("public", queries[0])] * 4
    sockets = await sockets_subscribed(roles, plan)

    count, frames = await count_delivery_queries(sockets, set_price, keys["A-1"], "3.33")

    assert count == 5
    assert [frame["data"] for frame in frames[:4]] == [
        [{"id": keys["A-1"]}],
        [{"sku": "A-1"}],
        [{"price": "3.33"}],
        [{"id": keys["A-1"]}],
    ]
    assert len(frames) == 24 and all(frame["event"] == "update" for frame in frames)
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
