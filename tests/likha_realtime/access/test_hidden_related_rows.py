"""No oracle on hidden related rows (PROTOCOL §5): a filter or sort through a relation never reads a related row the
caller's row rule on that collection hides. A condition on a hidden row is false whatever its operator, a sort key
on one is NULL; on the REST socket (subscribe, items), over HTTP and in GraphQL, for events and deletes alike.
Superusers, and relations to collections without a row rule, read exactly as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.test import Client

from erp_demo.models import Customer, SalesOrder
from erp_demo.realtime import customer_fields
from likha_realtime.access import reads, sharing
from likha_realtime.access.collections import registry
from likha_realtime.access.principal import Principal
from likha_realtime.query import compile_filter, parse_query
from tests.likha_realtime.support import Roles, ask, next_frame, open_socket, restore_collection, run_db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

FIELDS = ["id", "customer.name"]
ORDERS = ("ann", "hidden", "zed", "hidden-shipped")  # in key order


def hide_customers(user: Any) -> Q:
    """Customers named "Hidden" are for superusers only."""
    return ~Q(name="Hidden")


@pytest.fixture
def hidden_customers() -> Iterator[None]:
    """Customers under a row rule (the demo has none): re-registered for the test, restored after it."""
    original = registry.get("customers")
    assert original is not None
    registry.register("customers", Customer, row_rule=hide_customers, readable_fields=customer_fields)
    yield
    restore_collection(original)


def world() -> dict[str, int]:
    """Orders of Ann, Zed and a hidden customer; none is a draft, so the editor may read every order."""
    ann = Customer.objects.create(name="Ann", email="ann@x.test")
    hidden = Customer.objects.create(name="Hidden", email="hidden@x.test")
    zed = Customer.objects.create(name="Zed", email="zed@x.test")
    keys = {
        "ann": SalesOrder.objects.create(customer=ann, status="confirmed", total=Decimal(10)).pk,
        "hidden": SalesOrder.objects.create(customer=hidden, status="confirmed", total=Decimal(20)).pk,
        "zed": SalesOrder.objects.create(customer=zed, status="shipped", total=Decimal(30)).pk,
        "hidden-shipped": SalesOrder.objects.create(customer=hidden, status="shipped", total=Decimal(40)).pk,
    }
    assert list(keys) == list(ORDERS) and sorted(keys.values()) == list(keys.values())
    return keys | {"hidden-customer": hidden.pk}


CUSTOMER_OF = {"ann": "Ann", "hidden": "Hidden", "zed": "Zed", "hidden-shipped": "Hidden"}


def rows(keys: dict[str, int], names: list[str], role: str) -> list[dict[str, Any]]:
    """Frames' rows of ``FIELDS``: a hidden customer is null, except for the superuser."""
    out = []
    for name in names:
        customer = CUSTOMER_OF[name]
        shown = None if customer == "Hidden" and role == "editor" else {"name": customer}
        out.append({"id": keys[name], "customer": shown})
    return out


async def reads_of(roles: Roles, role: str, query: dict[str, Any]) -> list[Any]:
    """A subscription's init frame and an items read over the socket, and a GET /items, with ``query``."""
    comm = await open_socket(roles.path(role))
    base = {"collection": "sales_orders", "query": query}
    init = await ask(comm, {"type": "subscribe", **base, "uid": "s"})
    read = await ask(comm, {"type": "items", "action": "read", **base, "uid": "r"})
    await comm.disconnect()
    return [init, read, await run_db(http_get, roles, role, query)]


def http_get(roles: Roles, role: str, query: dict[str, Any]) -> tuple[int, Any]:
    params = {key: value if isinstance(value, str) else json.dumps(value) for key, value in query.items()}
    params["fields"] = ",".join(query["fields"])
    if "sort" in query:
        params["sort"] = ",".join(query["sort"])
    response = Client().get("/items/sales_orders", params, **roles.headers(role))
    return response.status_code, response.json()


def answers(data: list[dict[str, Any]], meta: dict[str, int] | None = None) -> list[Any]:
    """What ``reads_of`` gets when ``data`` (and ``meta``) is the answer."""
    extra = {"meta": meta} if meta else {}
    return [
        {"type": "subscription", "event": "init", "data": data, **extra, "uid": "s"},
        {"type": "items", "data": data, **extra, "uid": "r"},
        (200, {"data": data, **extra}),
    ]


# Each filter with the orders it selects for the editor (who may not see the customer "Hidden") and the admin.
FILTERS = [
    pytest.param({"customer.name": {"_eq": "Hidden"}}, [], ["hidden", "hidden-shipped"], id="eq-dotted"),
    pytest.param({"customer": {"name": {"_eq": "Hidden"}}}, [], ["hidden", "hidden-shipped"], id="eq-nested"),
    pytest.param(
        {"customer": {"email": {"_starts_with": "hidden"}}}, [], ["hidden", "hidden-shipped"], id="starts-with"
    ),
    pytest.param({"customer.name": {"_in": ["Hidden", "Ann"]}}, ["ann"], ["ann", "hidden", "hidden-shipped"], id="in"),
    pytest.param({"customer.name": {"_gt": "B"}}, ["zed"], ["hidden", "zed", "hidden-shipped"], id="gt"),
    pytest.param({"customer.name": {"_eq": "Ann"}}, ["ann"], ["ann"], id="eq-visible"),
    pytest.param(
        {"_or": [{"status": {"_eq": "shipped"}}, {"customer.name": {"_eq": "Hidden"}}]},
        ["zed", "hidden-shipped"],
        ["hidden", "zed", "hidden-shipped"],
        id="or-keeps-the-other-branch",
    ),
    pytest.param(
        {
            "_and": [
                {"status": {"_eq": "confirmed"}},
                {"customer": {"_or": [{"name": {"_eq": "Hidden"}}, {"id": {"_gt": 0}}]}},
            ]
        },
        ["ann"],
        ["ann", "hidden"],
        id="and-or-nested",
    ),
    pytest.param({"customer.name": {"_neq": "Ann"}}, ["zed"], ["hidden", "zed", "hidden-shipped"], id="neq"),
    pytest.param({"customer.name": {"_nin": ["Ann"]}}, ["zed"], ["hidden", "zed", "hidden-shipped"], id="nin"),
    pytest.param(
        {"customer": {"email": {"_ncontains": "ann"}}}, ["zed"], ["hidden", "zed", "hidden-shipped"], id="ncontains"
    ),
    pytest.param({"customer.name": {"_null": True}}, [], [], id="null"),
    pytest.param({"customer.name": {"_nnull": True}}, ["ann", "zed"], list(ORDERS), id="nnull"),
    pytest.param({"customer.id": {"_nnull": True}}, ["ann", "zed"], list(ORDERS), id="related-key"),
    pytest.param({"customer": {"_nnull": True}}, list(ORDERS), list(ORDERS), id="own-key"),
]


@pytest.mark.usefixtures("hidden_customers")
@pytest.mark.parametrize(("raw", "editor", "admin"), FILTERS)
async def test_a_filter_never_matches_on_a_related_row_the_caller_cannot_see(
    roles: Roles, raw: dict[str, Any], editor: list[str], admin: list[str]
) -> None:
    keys = await run_db(world)
    query = {"fields": FIELDS, "filter": raw, "meta": "filter_count"}

    for role, names in (("editor", editor), ("admin", admin)):
        expected = answers(rows(keys, names, role), {"filter_count": len(names)})
        assert await reads_of(roles, role, query) == expected, role


@pytest.mark.usefixtures("hidden_customers")
async def test_the_same_filter_matches_once_the_related_row_is_visible(roles: Roles) -> None:
    keys = await run_db(world)
    query = {"fields": FIELDS, "filter": {"customer.email": {"_eq": "hidden@x.test"}}}

    before = await reads_of(roles, "editor", query)
    await run_db(lambda: Customer.objects.filter(pk=keys["hidden-customer"]).update(name="Shown"))
    after = await reads_of(roles, "editor", query)

    assert before == answers([])
    shown = [{"id": keys[name], "customer": {"name": "Shown"}} for name in ("hidden", "hidden-shipped")]
    assert after == answers(shown)


def nulls_first(descending: bool) -> bool:
    """Where the database puts NULL: first ascending on SQLite, last ascending on PostgreSQL."""
    return connection.features.nulls_order_largest == descending


@pytest.mark.usefixtures("hidden_customers")
@pytest.mark.parametrize(
    ("sort", "visible", "admin"),
    [
        pytest.param(["customer.name"], ["ann", "zed"], ["ann", "hidden", "hidden-shipped", "zed"], id="ascending"),
        pytest.param(["-customer.name"], ["zed", "ann"], ["zed", "hidden", "hidden-shipped", "ann"], id="descending"),
        pytest.param(["-customer.email", "-id"], ["zed", "ann"], ["zed", "hidden-shipped", "hidden", "ann"], id="two"),
    ],
)
async def test_a_sort_key_of_a_hidden_related_row_is_null(
    roles: Roles, sort: list[str], visible: list[str], admin: list[str]
) -> None:
    keys = await run_db(world)
    hidden = ["hidden-shipped", "hidden"] if sort[-1] == "-id" else ["hidden", "hidden-shipped"]
    editor = hidden + visible if nulls_first(sort[0].startswith("-")) else visible + hidden

    for role, names in (("editor", editor), ("admin", admin)):
        query = {"fields": FIELDS, "sort": sort}
        assert await reads_of(roles, role, query) == answers(rows(keys, names, role)), role


@pytest.mark.usefixtures("hidden_customers")
@pytest.mark.parametrize(
    ("sort", "names"),
    [
        pytest.param(["customer"], ["ann", "hidden", "hidden-shipped", "zed"], id="ascending"),
        pytest.param(["-customer"], ["zed", "hidden", "hidden-shipped", "ann"], id="descending"),
    ],
)
async def test_a_sort_by_a_relation_is_by_its_key_not_by_the_related_models_ordering(
    roles: Roles, monkeypatch: pytest.MonkeyPatch, sort: list[str], names: list[str]
) -> None:
    keys = await run_db(world)  # customers' keys: Ann < Hidden < Zed
    monkeypatch.setattr(Customer._meta, "ordering", ["-name"])  # Django sorts a relation by this, hidden or not
    query = {"fields": ["id"], "sort": sort}  # without the relation among the fields, whose column would be the key

    for role in ("editor", "admin"):
        assert await reads_of(roles, role, query) == answers([{"id": keys[name]} for name in names]), role


# -- events ----------------------------------------------------------------------------------------------------

PROBE = {"_or": [{"status": {"_eq": "shipped"}}, {"customer.name": {"_eq": "Hidden"}}]}


def set_total(key: int, total: str) -> None:
    order = SalesOrder.objects.get(pk=key)
    order.total = Decimal(total)
    order.save()


def delete_order(key: int) -> None:
    SalesOrder.objects.get(pk=key).delete()


@pytest.mark.usefixtures("hidden_customers")
async def test_events_never_match_on_a_related_row_the_subscriber_cannot_see(roles: Roles) -> None:
    keys = await run_db(world)
    probe = await open_socket(roles.path("editor"))
    ann = await open_socket(roles.path("editor"))
    admin = await open_socket(roles.path("admin"))
    await ask(probe, {"type": "subscribe", "collection": "sales_orders", "query": {"fields": FIELDS, "filter": PROBE}})
    ann_filter = {"fields": ["id"], "filter": {"customer.name": {"_eq": "Ann"}}}
    await ask(ann, {"type": "subscribe", "collection": "sales_orders", "query": ann_filter})
    admin_filter = {"fields": ["id"], "filter": {"customer.name": {"_eq": "Hidden"}}}
    await ask(admin, {"type": "subscribe", "collection": "sales_orders", "query": admin_filter})

    await run_db(set_total, keys["hidden"], "21.00")  # its hidden customer's name is all that would match
    await run_db(set_total, keys["hidden-shipped"], "41.00")  # the probe's fence: shipped
    updated = await next_frame(probe)
    await run_db(delete_order, keys["hidden"])  # withheld from the probe, as the update was
    await run_db(delete_order, keys["hidden-shipped"])  # the probe's fence
    deleted = await next_frame(probe)
    await run_db(delete_order, keys["ann"])  # a visible customer: evaluated on the snapshot, and sent
    admin_frames = [await next_frame(admin) for _ in range(4)]
    ann_deleted = await next_frame(ann)
    for comm in (probe, ann, admin):
        await comm.disconnect()

    assert updated == {
        "type": "subscription",
        "event": "update",
        "data": [{"id": keys["hidden-shipped"], "customer": None}],
    }
    assert deleted == {"type": "subscription", "event": "delete", "data": [keys["hidden-shipped"]]}
    assert ann_deleted == {"type": "subscription", "event": "delete", "data": [keys["ann"]]}
    assert admin_frames == [
        {"type": "subscription", "event": "update", "data": [{"id": keys["hidden"]}]},
        {"type": "subscription", "event": "update", "data": [{"id": keys["hidden-shipped"]}]},
        {"type": "subscription", "event": "delete", "data": [keys["hidden"]]},
        {"type": "subscription", "event": "delete", "data": [keys["hidden-shipped"]]},
    ]


# -- unchanged reads -------------------------------------------------------------------------------------------

QUERY = {"fields": FIELDS, "filter": {"customer.name": {"_eq": "Ann"}}, "sort": ["-customer.name"]}


def plan_of(email: str) -> reads.ReadPlan:
    principal = Principal(get_user_model().objects.get(email=email))
    collection = registry.get("sales_orders")
    assert collection is not None
    return reads.plan_read(collection, principal, parse_query(QUERY, limit_default=100, limit_max=100))


def test_a_superuser_reads_through_a_row_rule_exactly_as_without_one(roles: Roles) -> None:
    unruled = plan_of("admin@example.com")
    original = registry.get("customers")
    assert original is not None
    registry.register("customers", Customer, row_rule=hide_customers, readable_fields=customer_fields)
    try:
        ruled = plan_of("admin@example.com")
    finally:
        registry.register("customers", Customer, readable_fields=original.field_rule, fields=original.fields)

    assert sharing.plan_key(ruled) == sharing.plan_key(unruled)
    assert (ruled.condition, ruled.order) == (compile_filter(SalesOrder, QUERY["filter"]), ["-customer__name", "pk"])


def test_a_relation_to_a_collection_without_row_rule_compiles_as_before(roles: Roles) -> None:
    plan = plan_of("editor@example.com")  # customers have no row rule in the demo; orders have one

    row_rule = ~Q(status="draft")
    assert plan.condition == row_rule & compile_filter(SalesOrder, QUERY["filter"])
    assert plan.order == ["-customer__name", "pk"]


# -- GraphQL ---------------------------------------------------------------------------------------------------


def graphql(roles: Roles, role: str, variables: dict[str, Any]) -> tuple[int, Any]:
    query = "query($filter: JSON, $sort: [String!]) { sales_orders(filter: $filter, sort: $sort) { id } }"
    body = json.dumps({"query": query, "variables": variables})
    response = Client().post("/graphql", body, content_type="application/json", **roles.headers(role))
    return response.status_code, response.json()


@pytest.mark.usefixtures("hidden_customers")
@pytest.mark.parametrize(
    ("variables", "editor", "admin"),
    [
        pytest.param({"filter": {"customer.name": {"_eq": "Hidden"}}}, [], ["hidden", "hidden-shipped"], id="eq"),
        pytest.param({"filter": PROBE}, ["zed", "hidden-shipped"], ["hidden", "zed", "hidden-shipped"], id="or"),
        pytest.param(
            {"filter": {"customer": {"name": {"_neq": "Zed"}}}}, ["ann"], ["ann", "hidden", "hidden-shipped"], id="neq"
        ),
        pytest.param({"sort": ["-customer.name"]}, None, ["zed", "hidden", "hidden-shipped", "ann"], id="sort"),
    ],
)
def test_the_graphql_filter_and_sort_arguments_never_read_a_hidden_related_row(
    roles: Roles, variables: dict[str, Any], editor: list[str] | None, admin: list[str]
) -> None:
    keys = world()
    if editor is None:  # the sort: hidden rows as NULL
        editor = ["zed", "ann", "hidden", "hidden-shipped"]
        if nulls_first(descending=True):
            editor = editor[2:] + editor[:2]

    for role, names in (("editor", editor), ("admin", admin)):
        expected = {"data": {"sales_orders": [{"id": str(keys[name])} for name in names]}}
        assert graphql(roles, role, variables) == (200, expected), role
