"""Subscriptions of the REST socket (PROTOCOL §5): init, event and item frames, uid rules, unsubscribe, queries.

"Nothing arrives" is never asserted by waiting alone: a later write that the subscription does hear (a fence)
must be the next frame, since one process delivers the events of one collection in publication order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from erp_demo.models import Product
from likha_realtime.events import publish
from tests.likha_realtime.support import (
    ID_SKU_PRICE,
    Roles,
    ask,
    delete,
    error,
    event,
    make,
    next_frame,
    no_access,
    no_field,
    open_socket,
    row,
    run_db,
    set_price,
    subscribe,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]


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
    await subscribe(watcher, item=str(keys["A-2"]), query={"fields": ["sku", "name"]}, uid="i")
    message = {"type": "items", "action": "update", "collection": "products", "ids": list(keys.values())}
    await ask(writer, {**message, "data": {"name": "Same"}, "query": {"fields": ["id"]}})
    assert await next_frame(watcher) == event("update", {"sku": "A-2", "name": "Same"}, uid="i")
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
        error("subscribe", "FORBIDDEN", no_field("products", "nope"), uid="s"),
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
    pytest.param({"filter": {"name": {"_like": "x"}}}, UNKNOWN_OPERATOR, id="unknown-operator"),
    pytest.param(
        {"filter": "{not json"}, '"filter" must be a JSON object, received text that is not valid JSON.', id="bad-json"
    ),
    pytest.param({"limit": "ten"}, '"limit" must be an integer, received "ten".', id="limit-text"),
    pytest.param(
        {"colour": "red"},
        'Unknown query parameter "colour"; expected one of fields, filter, sort, limit, offset, page, meta.',
        id="unknown-key",
    ),
    pytest.param(
        {"filter": {"name": {"_eq": "\ud800"}}},
        '"filter" holds text that no database can take (a NUL character or a lone surrogate).',
        id="lone-surrogate",
    ),
    pytest.param(
        {"filter": {"name": {"_starts_with": "\x00"}}},
        '"filter" holds text that no database can take (a NUL character or a lone surrogate).',
        id="nul",
    ),
]


@pytest.mark.parametrize(("query", "message"), INVALID_QUERIES)
async def test_unknown_operators_and_malformed_queries_are_invalid_query(
    comm: WebsocketCommunicator, query: dict[str, Any], message: str
) -> None:
    reply = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "q"})
    assert reply == error("subscribe", "INVALID_QUERY", message, uid="q")


# The editor is no superuser: a name that does not exist is refused as one they may not read (test_no_oracle.py).
UNKNOWN_NAMES = [
    pytest.param({"fields": ["nope"]}, "nope", id="unknown-field"),
    pytest.param({"fields": "id,nope"}, "nope", id="unknown-field-string"),
    pytest.param({"fields": ["sku.name"]}, "sku.name", id="not-relation"),
    pytest.param({"filter": {"nope": {"_eq": 1}}}, "nope", id="filter-field"),
    pytest.param({"filter": '{"nope":{"_eq":1}}'}, "nope", id="filter-field-text"),
    pytest.param({"sort": ["nope"]}, "nope", id="sort-field"),
    pytest.param({"sort": "-nope"}, "nope", id="sort-field-string"),
]


@pytest.mark.parametrize(("query", "name"), UNKNOWN_NAMES)
async def test_unknown_fields_are_forbidden_to_a_non_admin(
    comm: WebsocketCommunicator, query: dict[str, Any], name: str
) -> None:
    reply = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "q"})
    assert reply == error("subscribe", "FORBIDDEN", no_field("products", name), uid="q")


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
    assert reply == error("subscribe", "FORBIDDEN", no_field("customers", "nope"), uid="q")


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
