"""No oracle: for everyone but superusers a field that does not exist is refused exactly as one they may not read
(FORBIDDEN naming it) in fields, sort, filter and items data, on the REST socket and over HTTP; a relation to a
collection they may not view is refused exactly as a field that is not a relation. Superusers are told what does not
exist (INVALID_QUERY, INVALID_PAYLOAD)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from erp_demo.models import Customer, Product, SalesOrder
from likha_realtime.access.collections import registry
from likha_realtime.query.filters import OPERATORS
from tests.likha_realtime.access.test_items import grant
from tests.likha_realtime.support import Roles, ask, error, no_field, open_socket, run_db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

HIDDEN = "credit_limit"  # a customer's field the editor may not read (erp_demo.realtime.customer_fields)
UNKNOWN = "nope"


def named(value: Any, name: str) -> Any:
    """``value`` with every NAME in it (keys, strings, JSON text) replaced by ``name``."""
    return json.loads(json.dumps(value).replace("NAME", name))


async def socket_replies(path: str, collection: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies to a subscribe, an event-only subscribe and an items read with ``query``."""
    comm = await open_socket(path)
    base = {"collection": collection, "query": query}
    replies = [
        await ask(comm, {"type": "subscribe", **base, "uid": "s"}),
        await ask(comm, {"type": "subscribe", **base, "event": "delete", "uid": "d"}),
        await ask(comm, {"type": "items", "action": "read", **base, "uid": "r"}),
    ]
    await comm.disconnect()
    return replies


def everywhere(code: str, message: str) -> list[dict[str, Any]]:
    return [
        error("subscribe", code, message, uid="s"),
        error("subscribe", code, message, uid="d"),
        error("items", code, message, uid="r"),
    ]


def http_get(headers: dict[str, str], collection: str, query: dict[str, Any]) -> tuple[int, Any]:
    """``GET /items/<collection>`` with ``query`` in the string forms of HTTP parameters."""
    params = {
        key: value if isinstance(value, str) else ",".join(value) if isinstance(value, list) else json.dumps(value)
        for key, value in query.items()
    }
    response = Client().get(f"/items/{collection}", params, **headers)
    return response.status_code, response.json()


def envelope(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


# -- a hidden field and an unknown one -------------------------------------------------------------------------

# Each query names NAME; each is refused naming NAME in "customers".
FIELD_PROBES = [
    pytest.param("customers", {"fields": ["NAME"]}, id="fields"),
    pytest.param("customers", {"fields": "id,NAME"}, id="fields-string"),
    pytest.param("customers", {"fields": ["NAME.x"]}, id="fields-through"),
    pytest.param("customers", {"fields": ["NAME.*"]}, id="fields-star-through"),
    pytest.param("customers", {"sort": ["NAME"]}, id="sort"),
    pytest.param("customers", {"sort": "-NAME"}, id="sort-descending"),
    pytest.param("customers", {"sort": ["NAME.x"]}, id="sort-through"),
    pytest.param("customers", {"filter": {"NAME": {"_gt": 0}}}, id="filter"),
    pytest.param("customers", {"filter": '{"NAME":{"_null":true}}'}, id="filter-string"),
    pytest.param("customers", {"filter": {"_and": [{"name": {"_eq": "x"}}, {"NAME": {"_gt": 0}}]}}, id="filter-and"),
    pytest.param(
        "customers", {"filter": {"_or": [{"id": {"_eq": 1}}, {"_and": [{"NAME": {"_lt": 5}}]}]}}, id="filter-or-and"
    ),
    pytest.param("customers", {"filter": {"NAME.x": {"_eq": 1}}}, id="filter-through"),
    pytest.param("customers", {"filter": {"NAME": {"x": {"_eq": 1}}}}, id="filter-nested-through"),
    pytest.param("sales_orders", {"fields": ["id", "customer.NAME"]}, id="relation-fields"),
    pytest.param("sales_orders", {"sort": ["-customer.NAME"]}, id="relation-sort"),
    pytest.param("sales_orders", {"filter": {"customer.NAME": {"_gt": 0}}}, id="relation-filter-dotted"),
    pytest.param("sales_orders", {"filter": {"customer": {"NAME": {"_gt": 0}}}}, id="relation-filter"),
    pytest.param(
        "sales_orders",
        {"filter": {"_or": [{"status": {"_eq": "draft"}}, {"customer": {"_and": [{"NAME": {"_gt": 0}}]}}]}},
        id="relation-filter-or-and",
    ),
]


@pytest.mark.parametrize(("collection", "query"), FIELD_PROBES)
async def test_an_editor_is_refused_a_hidden_and_an_unknown_field_alike_over_the_socket(
    roles: Roles, collection: str, query: dict[str, Any]
) -> None:
    for name in (HIDDEN, UNKNOWN):
        replies = await socket_replies(roles.path("editor"), collection, named(query, name))
        assert replies == everywhere("FORBIDDEN", no_field("customers", name)), name


@pytest.mark.parametrize(("collection", "query"), FIELD_PROBES)
def test_an_editor_is_refused_a_hidden_and_an_unknown_field_alike_over_http(
    roles: Roles, collection: str, query: dict[str, Any]
) -> None:
    for name in (HIDDEN, UNKNOWN):
        assert http_get(roles.headers("editor"), collection, named(query, name)) == (
            403,
            envelope("FORBIDDEN", no_field("customers", name)),
        ), name


@pytest.mark.parametrize(("collection", "query"), FIELD_PROBES)
async def test_a_superuser_is_told_a_field_does_not_exist(roles: Roles, collection: str, query: dict[str, Any]) -> None:
    message = f'Unknown field "{UNKNOWN}" in collection "customers".'
    assert await socket_replies(roles.path("admin"), collection, named(query, UNKNOWN)) == everywhere(
        "INVALID_QUERY", message
    )
    status, body = await run_db(http_get, roles.headers("admin"), collection, named(query, UNKNOWN))
    assert (status, body) == (400, envelope("INVALID_QUERY", message))


# -- a relation to a collection one may not view, and a field that is not a relation ------------------------------

UNKNOWN_OPERATOR = 'Unknown operator "{}" on "NAME"; expected one of ' + ", ".join(OPERATORS) + "."

# The public role may view sales orders but not customers: "customer" and "status" (no relation) read alike.
RELATION_PROBES = [
    pytest.param({"fields": ["NAME.name"]}, "FORBIDDEN", no_field("sales_orders", "NAME.name"), id="fields"),
    pytest.param({"fields": ["id", "NAME.*"]}, "FORBIDDEN", no_field("sales_orders", "NAME.*"), id="fields-star"),
    pytest.param({"sort": ["NAME.name"]}, "FORBIDDEN", no_field("sales_orders", "NAME.name"), id="sort"),
    pytest.param({"sort": "-NAME.name"}, "FORBIDDEN", no_field("sales_orders", "NAME.name"), id="sort-descending"),
    pytest.param(
        {"filter": {"NAME.name": {"_eq": "x"}}}, "FORBIDDEN", no_field("sales_orders", "NAME.name"), id="filter-dotted"
    ),
    pytest.param(
        {"filter": {"_or": [{"id": {"_eq": 1}}, {"NAME.name": {"_eq": "x"}}]}},
        "FORBIDDEN",
        no_field("sales_orders", "NAME.name"),
        id="filter-dotted-or",
    ),
    pytest.param(
        {"filter": {"NAME": {"name": {"_eq": "x"}}}}, "INVALID_QUERY", UNKNOWN_OPERATOR.format("name"), id="filter"
    ),
    pytest.param(
        {"filter": {"NAME": {"_and": [{"name": {"_eq": "x"}}]}}},
        "INVALID_QUERY",
        UNKNOWN_OPERATOR.format("_and"),
        id="filter-and",
    ),
]


@pytest.fixture
def public_orders(roles: Roles) -> dict[str, int]:
    """The public role may view sales orders (not customers); one confirmed order, its customer's key."""
    grant("Public", "view_salesorder")
    customer = Customer.objects.create(name="Acme", email="acme@example.com")
    order = SalesOrder.objects.create(customer=customer, status="confirmed")
    return {"customer": customer.pk, "order": order.pk}


@pytest.mark.parametrize(("query", "code", "message"), RELATION_PROBES)
async def test_a_relation_to_a_hidden_collection_reads_as_a_field_that_is_not_a_relation(
    roles: Roles, public_orders: dict[str, int], query: dict[str, Any], code: str, message: str
) -> None:
    for name in ("customer", "status"):
        replies = await socket_replies(roles.path("public"), "sales_orders", named(query, name))
        assert replies == everywhere(code, named(message, name)), name
        status, body = await run_db(http_get, {}, "sales_orders", named(query, name))
        assert (status, body) == (403 if code == "FORBIDDEN" else 400, envelope(code, named(message, name))), name


async def test_a_relation_to_a_hidden_collection_is_still_its_key(roles: Roles, public_orders: dict[str, int]) -> None:
    query = {"fields": ["id", "customer"], "filter": {"customer": {"_eq": public_orders["customer"]}}}
    comm = await open_socket(roles.path("public"))
    reply = await ask(comm, {"type": "items", "action": "read", "collection": "sales_orders", "query": query})
    await comm.disconnect()
    assert reply == {"type": "items", "data": [{"id": public_orders["order"], "customer": public_orders["customer"]}]}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"fields": ["status.name"]}, 'Field "status" of collection "sales_orders" is not a relation.'),
        ({"sort": ["status.name"]}, 'Field "status" of collection "sales_orders" is not a relation.'),
        ({"filter": {"status.name": {"_eq": "x"}}}, '"status" is not a relation, so "status.…" cannot be filtered.'),
        ({"filter": {"status": {"name": {"_eq": "x"}}}}, named(UNKNOWN_OPERATOR.format("name"), "status")),
    ],
    ids=["fields", "sort", "filter-dotted", "filter"],
)
async def test_a_superuser_is_told_a_field_is_not_a_relation(roles: Roles, query: dict[str, Any], message: str) -> None:
    assert await socket_replies(roles.path("admin"), "sales_orders", query) == everywhere("INVALID_QUERY", message)


# -- items data ------------------------------------------------------------------------------------------------


async def test_creating_with_a_hidden_or_an_unknown_field_is_refused_alike(roles: Roles) -> None:
    await run_db(grant, "Editors", "add_customer")  # may add customers, not see (so not set) their credit limits
    comm = await open_socket(roles.path("editor"))
    message = {"type": "items", "action": "create", "collection": "customers", "uid": "c"}
    replies = {
        name: await ask(comm, {**message, "data": {"name": "Acme", "email": "a@example.com", name: "900"}})
        for name in (HIDDEN, UNKNOWN)
    }
    await comm.disconnect()

    assert replies == {name: error("items", "FORBIDDEN", no_field("customers", name), uid="c") for name in replies}
    for name in (HIDDEN, UNKNOWN):
        body = json.dumps({"name": "Acme", "email": "a@example.com", name: "900"})
        response = await run_db(
            Client().post, "/items/customers", body, content_type="application/json", **roles.headers("editor")
        )
        assert (response.status_code, response.json()) == (403, envelope("FORBIDDEN", no_field("customers", name)))
    assert await run_db(Customer.objects.count) == 0


@pytest.fixture
def products_without_updated() -> Iterator[None]:
    """Products whose read-only ``updated`` is hidden from everyone but superusers."""
    original = registry.get("products")
    assert original is not None
    visible = [name for name in original.fields if name != "updated"]
    registry.register("products", Product, readable_fields=lambda user: visible)
    yield
    registry.register(original.name, original.model, readable_fields=original.field_rule, fields=original.fields)


@pytest.mark.usefixtures("products_without_updated")
async def test_a_hidden_read_only_field_is_refused_as_an_unknown_one_not_as_read_only(roles: Roles) -> None:
    key = await run_db(lambda: Product.objects.create(name="P", sku="P-1").pk)
    sent = {"updated": "2025-01-01T00:00:00Z", UNKNOWN: 1}
    replies = {}
    for role in ("editor", "admin"):
        comm = await open_socket(roles.path(role))
        for name, value in sent.items():
            update = {"type": "items", "action": "update", "collection": "products", "id": key, "uid": "u"}
            replies[role, name] = await ask(comm, {**update, "data": {name: value}})
        await comm.disconnect()

    assert replies == {
        ("editor", "updated"): error("items", "FORBIDDEN", no_field("products", "updated"), uid="u"),
        ("editor", UNKNOWN): error("items", "FORBIDDEN", no_field("products", UNKNOWN), uid="u"),
        ("admin", "updated"): error("items", "INVALID_PAYLOAD", 'Field "updated" is read-only.', uid="u"),
        ("admin", UNKNOWN): error(
            "items", "INVALID_PAYLOAD", f'Unknown field "{UNKNOWN}" in collection "products".', uid="u"
        ),
    }
    for name, value in sent.items():
        body = json.dumps({name: value})
        response = await run_db(
            Client().patch, f"/items/products/{key}", body, content_type="application/json", **roles.headers("editor")
        )
        assert (response.status_code, response.json()) == (403, envelope("FORBIDDEN", no_field("products", name)))
