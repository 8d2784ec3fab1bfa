"""Who may do what (PROTOCOL §2): admin, editor and public × every collection × every action, and nothing leaks.

The demo's rights (``seed_demo``): the admin is a superuser; Editors may view, add and change products and view
customers and sales orders; Public may view products. Row rule: draft orders only for ``change_salesorder``
holders. Field rules: a customer's ``credit_limit`` only for ``change_customer`` holders; no ``stock`` for the
public role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.db import models
from django.test import Client

from erp_demo.models import Customer, Product, SalesOrder
from tests.likha_realtime.support import COLLECTIONS, ROLES, Roles, ask, error, no_access, no_field, open_socket, run_db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

SOCKET_ACTIONS = ("subscribe", "read", "create", "update", "delete")
HTTP_ACTIONS = ("read", "create", "update", "delete")
ALLOWED = {
    *(("admin", collection, action) for collection in COLLECTIONS for action in SOCKET_ACTIONS),
    *(("editor", "products", action) for action in ("subscribe", "read", "create", "update")),
    ("editor", "customers", "subscribe"),
    ("editor", "customers", "read"),
    ("editor", "sales_orders", "subscribe"),
    ("editor", "sales_orders", "read"),
    ("public", "products", "subscribe"),
    ("public", "products", "read"),
}
MODELS: dict[str, type[models.Model]] = {"products": Product, "customers": Customer, "sales_orders": SalesOrder}
NO_ITEM = "You don't have permission to access this item or it does not exist."


def matrix(actions: tuple[str, ...]) -> list[Any]:
    return [
        pytest.param(
            role, collection, action, (role, collection, action) in ALLOWED, id=f"{role}-{collection}-{action}"
        )
        for role in ROLES
        for collection in COLLECTIONS
        for action in actions
    ]


@dataclass(frozen=True)
class Target:
    """A row of the collection that every role allowed to read it can see, and the data to write."""

    key: int
    create: dict[str, Any]
    update: dict[str, Any]

    def fields(self, data: dict[str, Any]) -> list[str]:
        return ["id", *data]


def target(collection: str) -> Target:
    if collection == "products":
        key = Product.objects.get(sku="SKU-0001").pk
        return Target(key, {"name": "Matrix Shelf", "sku": "MX-0001"}, {"name": "Renamed Shelf"})
    if collection == "customers":
        spare = Customer.objects.create(name="Spare Co", email="spare@example.com")  # no orders: deletable
        return Target(spare.pk, {"name": "Matrix Co", "email": "matrix@example.com"}, {"name": "Renamed Co"})
    order = SalesOrder.objects.filter(status="confirmed").order_by("pk").first()
    assert order is not None
    create = {"customer": order.customer_id, "status": "confirmed", "total": "12.50"}
    return Target(order.pk, create, {"total": "99.00"})


def state(collection: str, key: int) -> tuple[int, int, dict[str, Any] | None]:
    """How many rows, the newest key, and the target row: what a write changes."""
    model = MODELS[collection]
    newest = model._default_manager.order_by("-pk").values_list("pk", flat=True).first()
    return model._default_manager.count(), newest, model._default_manager.filter(pk=key).values().first()


def socket_message(collection: str, action: str, row: Target) -> dict[str, Any]:
    base = {"collection": collection, "uid": "m"}
    if action == "subscribe":
        return {"type": "subscribe", **base, "query": {"fields": ["id"], "filter": {"id": {"_eq": row.key}}}}
    items = {"type": "items", "action": action, **base}
    if action == "read":
        return {**items, "id": row.key, "query": {"fields": ["id"]}}
    if action == "create":
        return {**items, "data": row.create, "query": {"fields": row.fields(row.create)}}
    if action == "update":
        return {**items, "id": row.key, "data": row.update, "query": {"fields": row.fields(row.update)}}
    return {**items, "id": row.key}


def expected_data(action: str, row: Target, before: tuple[Any, ...], after: tuple[Any, ...]) -> Any:
    """The ``data`` an allowed action answers with, checked against what it did to the database."""
    if action in ("subscribe", "read"):
        assert after == before
        return [{"id": row.key}] if action == "subscribe" else {"id": row.key}
    if action == "create":
        assert after[0] == before[0] + 1 and after[1] != before[1]
        return {"id": after[1], **row.create}
    if action == "update":
        assert after[2] is not None and after[2] != before[2]
        return {"id": row.key, **row.update}
    assert after[0] == before[0] - 1 and after[2] is None
    return row.key


# -- the matrix ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "collection", "action", "allowed"), matrix(SOCKET_ACTIONS))
async def test_over_the_socket_each_role_may_do_exactly_what_its_rights_allow(
    demo: Roles, role: str, collection: str, action: str, allowed: bool
) -> None:
    row = await run_db(target, collection)
    before = await run_db(state, collection, row.key)
    comm = await open_socket(demo.path(role))
    reply = await ask(comm, socket_message(collection, action, row))
    after = await run_db(state, collection, row.key)
    await comm.disconnect()

    if not allowed:
        assert reply == error(
            "subscribe" if action == "subscribe" else "items", "FORBIDDEN", no_access(collection), uid="m"
        )
        assert after == before
    elif action == "subscribe":
        data = expected_data(action, row, before, after)
        assert reply == {"type": "subscription", "event": "init", "data": data, "uid": "m"}
    else:
        assert reply == {"type": "items", "data": expected_data(action, row, before, after), "uid": "m"}


def http_call(client: Client, demo: Roles, role: str, collection: str, action: str, row: Target) -> Any:
    headers = demo.headers(role)
    if action == "read":
        return client.get(f"/items/{collection}/{row.key}", {"fields": "id"}, **headers)
    if action == "create":
        path = f"/items/{collection}?fields={','.join(row.fields(row.create))}"
        return client.post(path, row.create, content_type="application/json", **headers)
    if action == "update":
        path = f"/items/{collection}/{row.key}?fields={','.join(row.fields(row.update))}"
        return client.patch(path, row.update, content_type="application/json", **headers)
    return client.delete(f"/items/{collection}/{row.key}", **headers)


@pytest.mark.parametrize(("role", "collection", "action", "allowed"), matrix(HTTP_ACTIONS))
@pytest.mark.django_db  # no socket: a rolled-back transaction is enough
def test_over_http_each_role_may_do_exactly_what_its_rights_allow(
    demo: Roles, role: str, collection: str, action: str, allowed: bool
) -> None:
    row = target(collection)
    before = state(collection, row.key)
    response = http_call(Client(), demo, role, collection, action, row)
    after = state(collection, row.key)

    if not allowed:
        assert (response.status_code, response.json()) == (
            403,
            {"errors": [{"message": no_access(collection), "extensions": {"code": "FORBIDDEN"}}]},
        )
        assert after == before
    elif action == "delete":
        assert (response.status_code, response.content) == (204, b"")
        expected_data(action, row, before, after)
    else:
        assert (response.status_code, response.json()) == (200, {"data": expected_data(action, row, before, after)})


# -- unknown collections ---------------------------------------------------------------------------------------

UNKNOWN = ["nope", "users", "erp_demo_product", "Product", "auth.User"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", UNKNOWN)
async def test_an_unregistered_collection_is_forbidden_over_the_socket_with_one_message(
    demo: Roles, role: str, name: str
) -> None:
    comm = await open_socket(demo.path(role))
    row = Target(1, {"name": "x"}, {"name": "y"})
    replies = {action: await ask(comm, socket_message(name, action, row)) for action in SOCKET_ACTIONS}
    await comm.disconnect()
    assert replies == {
        action: error("subscribe" if action == "subscribe" else "items", "FORBIDDEN", no_access(name), uid="m")
        for action in SOCKET_ACTIONS
    }


async def test_the_unknown_collection_message_is_the_documented_sentence(demo: Roles) -> None:
    comm = await open_socket(demo.path("admin"))
    reply = await ask(comm, {"type": "subscribe", "collection": "nope", "uid": 1})
    await comm.disconnect()
    assert reply == {
        "type": "subscribe",
        "status": "error",
        "error": {
            "code": "FORBIDDEN",
            "message": 'You don\'t have permission to access collection "nope" or it does not exist.',
        },
        "uid": 1,
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", HTTP_ACTIONS)
@pytest.mark.django_db
def test_an_unregistered_collection_is_forbidden_over_http(demo: Roles, role: str, action: str) -> None:
    response = http_call(Client(), demo, role, "nope", action, Target(1, {"name": "x"}, {"name": "y"}))
    assert (response.status_code, response.json()) == (
        403,
        {"errors": [{"message": no_access("nope"), "extensions": {"code": "FORBIDDEN"}}]},
    )


# -- draft orders never reach an editor ------------------------------------------------------------------------


def orders(**filters: Any) -> list[int]:
    return list(SalesOrder.objects.filter(**filters).order_by("pk").values_list("pk", flat=True))


async def test_an_editor_never_receives_draft_orders_in_init_or_reads(demo: Roles) -> None:
    visible = await run_db(orders, status__in=["confirmed", "shipped", "cancelled"])
    drafts = await run_db(orders, status="draft")
    assert visible and drafts
    comm = await open_socket(demo.path("editor"))
    everything = {"fields": ["id"], "limit": -1, "meta": ["total_count", "filter_count"]}

    init = await ask(comm, {"type": "subscribe", "collection": "sales_orders", "query": everything, "uid": "all"})
    assert init == {
        "type": "subscription",
        "event": "init",
        "data": [{"id": key} for key in visible],
        "meta": {"total_count": len(visible), "filter_count": len(visible)},
        "uid": "all",
    }
    read = await ask(comm, {"type": "items", "action": "read", "collection": "sales_orders", "query": everything})
    assert read == {"type": "items", "data": init["data"], "meta": init["meta"]}

    probe = {"fields": ["id"], "filter": {"status": {"_eq": "draft"}}, "meta": ["filter_count"]}
    assert await ask(comm, {"type": "items", "action": "read", "collection": "sales_orders", "query": probe}) == {
        "type": "items",
        "data": [],
        "meta": {"filter_count": 0},
    }
    one = {"type": "items", "action": "read", "collection": "sales_orders", "id": drafts[0], "uid": "d"}
    assert await ask(comm, one) == error("items", "FORBIDDEN", NO_ITEM, uid="d")
    some = {"type": "items", "action": "read", "collection": "sales_orders", "ids": [drafts[0], visible[0]]}
    assert await ask(comm, {**some, "query": {"fields": ["id"]}}) == {"type": "items", "data": [{"id": visible[0]}]}
    item = {"type": "subscribe", "collection": "sales_orders", "item": drafts[0], "uid": "it"}
    assert await ask(comm, item) == {"type": "subscription", "event": "init", "data": None, "uid": "it"}
    await comm.disconnect()


def http_get(demo: Roles, role: str, path: str, **params: Any) -> tuple[int, Any]:
    response = Client().get(path, params, **demo.headers(role))
    return response.status_code, response.json()


@pytest.mark.django_db
def test_an_editor_never_receives_draft_orders_over_http(demo: Roles) -> None:
    visible = orders(status__in=["confirmed", "shipped", "cancelled"])
    draft = orders(status="draft")[0]
    assert http_get(demo, "editor", "/items/sales_orders", fields="id", limit="-1", meta="total_count") == (
        200,
        {"data": [{"id": key} for key in visible], "meta": {"total_count": len(visible)}},
    )
    assert http_get(demo, "editor", f"/items/sales_orders/{draft}") == (
        403,
        {"errors": [{"message": NO_ITEM, "extensions": {"code": "FORBIDDEN"}}]},
    )
    assert http_get(demo, "admin", f"/items/sales_orders/{draft}", fields="id,status") == (
        200,
        {"data": {"id": draft, "status": "draft"}},
    )


ORDER_FIELDS = {"fields": ["id", "status"]}


async def subscribed(demo: Roles, role: str, uid: str, **subscribe: Any) -> WebsocketCommunicator:
    comm = await open_socket(demo.path(role))
    init = await ask(comm, {"type": "subscribe", "uid": uid, **subscribe})
    assert (init["type"], init["event"]) == ("subscription", "init"), init
    return comm


def confirmed_created() -> int:
    return SalesOrder.objects.create(customer=Customer.objects.first(), status="confirmed").pk


def confirmed_updated() -> int:
    order = SalesOrder.objects.filter(status="confirmed").order_by("-pk").first()
    order.total = order.total + 1
    order.save()
    return order.pk


def confirmed_deleted() -> int:
    order = SalesOrder.objects.filter(status="confirmed").order_by("-pk").first()
    key = order.pk
    order.delete()
    return key


# A visible write of the same action after the hidden one: once its frame arrives, nothing earlier can still come.
FENCES = {"create": confirmed_created, "update": confirmed_updated, "delete": confirmed_deleted}


def draft_created() -> int:
    return SalesOrder.objects.create(customer=Customer.objects.first(), status="draft").pk


def draft_updated() -> int:
    order = SalesOrder.objects.filter(status="draft").first()
    order.total = order.total + 1
    order.save()
    return order.pk


def draft_deleted() -> int:
    order = SalesOrder.objects.filter(status="draft").first()
    key = order.pk
    order.delete()
    return key


def drafts_deleted_in_bulk() -> int:
    key = SalesOrder.objects.filter(status="draft").order_by("pk").values_list("pk", flat=True).first()
    SalesOrder.objects.filter(pk=key).delete()
    return key


def moved_into_draft() -> int:
    order = SalesOrder.objects.filter(status="confirmed").first()
    order.status = "draft"
    order.save()
    return order.pk


DRAFT_WRITES = {
    "create-draft": (draft_created, "create"),
    "update-draft": (draft_updated, "update"),
    "delete-draft": (draft_deleted, "delete"),
    "queryset-delete-draft": (drafts_deleted_in_bulk, "delete"),
    "confirmed-into-draft": (moved_into_draft, "update"),
}


@pytest.mark.parametrize("write", list(DRAFT_WRITES))
async def test_an_editor_receives_no_event_of_a_draft_order(demo: Roles, write: str) -> None:
    do, action = DRAFT_WRITES[write]
    editor = await subscribed(demo, "editor", "e", collection="sales_orders", query=ORDER_FIELDS)
    editor_by_event = await subscribed(
        demo, "editor", "ev", collection="sales_orders", event=action, query=ORDER_FIELDS
    )
    admin = await subscribed(demo, "admin", "a", collection="sales_orders", query=ORDER_FIELDS)

    key = await run_db(do)
    fence = await run_db(FENCES[action])

    def frame(uid: str, key: int, status: str) -> dict[str, Any]:
        data = [key] if action == "delete" else [{"id": key, "status": status}]
        return {"type": "subscription", "event": action, "data": data, "uid": uid}

    assert await admin.receive_json_from(timeout=3) == frame("a", key, "draft")  # the write did happen
    assert await admin.receive_json_from(timeout=3) == frame("a", fence, "confirmed")
    assert await editor.receive_json_from(timeout=3) == frame("e", fence, "confirmed")
    assert await editor_by_event.receive_json_from(timeout=3) == frame("ev", fence, "confirmed")
    for comm in (editor, editor_by_event, admin):
        await comm.disconnect()


async def test_an_order_leaving_draft_reaches_an_editor_as_an_update(demo: Roles) -> None:
    draft = await run_db(lambda: SalesOrder.objects.filter(status="draft").first())
    editor = await subscribed(demo, "editor", "e", collection="sales_orders", query=ORDER_FIELDS)
    item = await subscribed(demo, "editor", "i", collection="sales_orders", item=str(draft.pk), query=ORDER_FIELDS)

    draft.status = "confirmed"
    await run_db(draft.save)

    update = {"type": "subscription", "event": "update"}
    assert await editor.receive_json_from(timeout=3) == {
        **update,
        "data": [{"id": draft.pk, "status": "confirmed"}],
        "uid": "e",
    }
    assert await item.receive_json_from(timeout=3) == {
        **update,
        "data": {"id": draft.pk, "status": "confirmed"},
        "uid": "i",
    }
    key = draft.pk
    await run_db(draft.delete)
    assert await editor.receive_json_from(timeout=3) == {
        "type": "subscription",
        "event": "delete",
        "data": [key],
        "uid": "e",
    }
    for comm in (editor, item):
        await comm.disconnect()


# -- credit_limit never reaches an editor ---------------------------------------------------------------------

CREDIT_PROBES = [
    pytest.param("customers", {"fields": ["credit_limit"]}, "customers", id="field"),
    pytest.param("customers", {"fields": "id,credit_limit"}, "customers", id="field-string"),
    pytest.param("customers", {"filter": {"credit_limit": {"_gt": 0}}}, "customers", id="filter"),
    pytest.param("customers", {"filter": '{"credit_limit":{"_null":true}}'}, "customers", id="filter-string"),
    pytest.param(
        "customers",
        {"filter": {"_or": [{"name": {"_eq": "x"}}, {"credit_limit": {"_lt": 5000}}]}},
        "customers",
        id="filter-nested-or",
    ),
    pytest.param("customers", {"sort": ["credit_limit"]}, "customers", id="sort"),
    pytest.param("customers", {"sort": "-credit_limit"}, "customers", id="sort-descending-string"),
    pytest.param("sales_orders", {"fields": ["id", "customer.credit_limit"]}, "customers", id="dotted-field"),
    pytest.param(
        "sales_orders", {"filter": {"customer": {"credit_limit": {"_gt": 0}}}}, "customers", id="relation-filter"
    ),
    pytest.param("sales_orders", {"filter": {"customer.credit_limit": {"_gt": 0}}}, "customers", id="dotted-filter"),
    pytest.param("sales_orders", {"sort": ["customer.credit_limit"]}, "customers", id="dotted-sort"),
]


async def probe_socket(demo: Roles, role: str, collection: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies to a subscribe, an event-only subscribe and a read with ``query``."""
    comm = await open_socket(demo.path(role))
    base = {"collection": collection, "query": query}
    replies = [
        await ask(comm, {"type": "subscribe", **base, "uid": "s"}),
        await ask(comm, {"type": "subscribe", **base, "event": "delete", "uid": "d"}),
        await ask(comm, {"type": "items", "action": "read", **base, "uid": "r"}),
    ]
    await comm.disconnect()
    return replies


def refused_everywhere(message: str) -> list[dict[str, Any]]:
    return [
        error("subscribe", "FORBIDDEN", message, uid="s"),
        error("subscribe", "FORBIDDEN", message, uid="d"),
        error("items", "FORBIDDEN", message, uid="r"),
    ]


def as_params(query: dict[str, Any]) -> dict[str, str]:
    """A query in the string forms of HTTP query parameters."""
    return {
        key: value if isinstance(value, str) else ",".join(value) if isinstance(value, list) else json.dumps(value)
        for key, value in query.items()
    }


@pytest.mark.parametrize(("collection", "query", "owner"), CREDIT_PROBES)
async def test_an_editor_cannot_read_filter_or_sort_on_credit_limit_over_the_socket(
    demo: Roles, collection: str, query: dict[str, Any], owner: str
) -> None:
    replies = await probe_socket(demo, "editor", collection, query)
    assert replies == refused_everywhere(no_field(owner, "credit_limit"))


@pytest.mark.django_db
@pytest.mark.parametrize(("collection", "query", "owner"), CREDIT_PROBES)
def test_an_editor_cannot_read_filter_or_sort_on_credit_limit_over_http(
    demo: Roles, collection: str, query: dict[str, Any], owner: str
) -> None:
    assert http_get(demo, "editor", f"/items/{collection}", **as_params(query)) == (
        403,
        {"errors": [{"message": no_field(owner, "credit_limit"), "extensions": {"code": "FORBIDDEN"}}]},
    )


@pytest.mark.parametrize("role", ["admin", "editor"])
async def test_fields_star_shows_credit_limit_only_to_those_who_may_change_customers(demo: Roles, role: str) -> None:
    customer = await run_db(lambda: Customer.objects.order_by("pk").last())
    comm = await open_socket(demo.path(role))
    query = {"filter": {"id": {"_eq": customer.pk}}}
    init = await ask(comm, {"type": "subscribe", "collection": "customers", "query": query, "uid": "c"})
    orders_query = {"fields": ["id", "customer.*"], "filter": {"customer": {"_eq": customer.pk}}, "limit": 1}
    nested = await ask(comm, {"type": "items", "action": "read", "collection": "sales_orders", "query": orders_query})
    customer.credit_limit = customer.credit_limit + 100
    await run_db(customer.save)
    event = await comm.receive_json_from(timeout=3)
    await comm.disconnect()

    readable = {"id", "name", "email", "created"} | ({"credit_limit"} if role == "admin" else set())
    assert set(init["data"][0]) == readable
    assert set(nested["data"][0]["customer"]) == readable
    assert (event["event"], set(event["data"][0])) == ("update", readable)
    if role == "admin":
        assert event["data"][0]["credit_limit"] == str(customer.credit_limit)


# -- stock never reaches the public role ----------------------------------------------------------------------

STOCK_PROBES = [
    pytest.param({"fields": ["stock"]}, id="field"),
    pytest.param({"fields": "name,stock"}, id="field-string"),
    pytest.param({"filter": {"stock": {"_gt": 10}}}, id="filter"),
    pytest.param({"filter": '{"stock":{"_eq":0}}'}, id="filter-string"),
    pytest.param({"filter": {"_and": [{"status": {"_eq": "active"}}, {"stock": {"_lt": 5}}]}}, id="filter-nested-and"),
    pytest.param({"sort": ["-stock"]}, id="sort"),
    pytest.param({"sort": "stock"}, id="sort-string"),
]


@pytest.mark.parametrize("query", STOCK_PROBES)
async def test_the_public_role_cannot_read_filter_or_sort_on_stock_over_the_socket(
    demo: Roles, query: dict[str, Any]
) -> None:
    replies = await probe_socket(demo, "public", "products", query)
    assert replies == refused_everywhere(no_field("products", "stock"))


@pytest.mark.django_db
@pytest.mark.parametrize("query", STOCK_PROBES)
def test_the_public_role_cannot_read_filter_or_sort_on_stock_over_http(demo: Roles, query: dict[str, Any]) -> None:
    assert http_get(demo, "public", "/items/products", **as_params(query)) == (
        403,
        {"errors": [{"message": no_field("products", "stock"), "extensions": {"code": "FORBIDDEN"}}]},
    )


async def test_the_public_role_sees_products_without_stock_everywhere(demo: Roles) -> None:
    product = await run_db(Product.objects.get, sku="SKU-0002")
    public_fields = {"id", "name", "sku", "price", "status", "updated"}
    comm = await open_socket(demo.path("public"))
    query = {"filter": {"sku": {"_eq": "SKU-0002"}}}
    init = await ask(comm, {"type": "subscribe", "collection": "products", "query": query, "uid": "p"})
    item = await ask(comm, {"type": "subscribe", "collection": "products", "item": product.pk, "uid": "i"})
    read = await ask(comm, {"type": "items", "action": "read", "collection": "products", "id": product.pk})
    product.stock += 5
    await run_db(product.save)
    frames = [await comm.receive_json_from(timeout=3), await comm.receive_json_from(timeout=3)]
    await comm.disconnect()

    assert set(init["data"][0]) == public_fields
    assert set(item["data"]) == public_fields
    assert set(read["data"]) == public_fields
    by_uid = {frame["uid"]: frame for frame in frames}
    assert set(by_uid["p"]["data"][0]) == public_fields
    assert set(by_uid["i"]["data"]) == public_fields
    status, body = await run_db(http_get, demo, "public", f"/items/products/{product.pk}")
    assert (status, set(body["data"])) == (200, public_fields)


# -- re-authentication on a live socket ------------------------------------------------------------------------


def touch_customer(key: int) -> None:
    customer = Customer.objects.get(pk=key)
    customer.credit_limit += 1
    customer.save()


async def test_reauthenticating_with_fewer_rights_narrows_the_live_subscriptions(demo: Roles) -> None:
    customer = await run_db(lambda: Customer.objects.order_by("pk").first().pk)
    comm = await open_socket(demo.path("admin"))
    await ask(comm, {"type": "subscribe", "collection": "sales_orders", "query": ORDER_FIELDS, "uid": "o"})
    one_customer = {"filter": {"id": {"_eq": customer}}}
    await ask(
        comm,
        {
            "type": "subscribe",
            "collection": "customers",
            "query": {**one_customer, "fields": "id,credit_limit"},
            "uid": "c",
        },
    )
    await ask(comm, {"type": "subscribe", "collection": "customers", "query": one_customer, "uid": "n"})

    login = await ask(comm, {"type": "auth", "email": "editor@example.com", "password": "editor-password", "uid": "re"})
    removed = await comm.receive_json_from(timeout=3)
    await run_db(draft_created)
    fence = await run_db(confirmed_created)
    orders = await comm.receive_json_from(timeout=3)
    await run_db(touch_customer, customer)
    first = await comm.receive_json_from(timeout=3)
    await run_db(touch_customer, customer)
    second = await comm.receive_json_from(timeout=3)
    await comm.disconnect()

    assert (login["type"], login["status"], login["uid"]) == ("auth", "ok", "re")
    assert removed == error(
        "subscribe", "FORBIDDEN", "Subscription removed: the new credentials cannot read it.", uid="c"
    )
    assert orders == {
        "type": "subscription",
        "event": "create",
        "data": [{"id": fence, "status": "confirmed"}],
        "uid": "o",
    }
    assert (first["uid"], set(first["data"][0])) == ("n", {"id", "name", "email", "created"})
    assert (second["uid"], set(second["data"][0])) == ("n", {"id", "name", "email", "created"})
