"""Items over the socket (PROTOCOL §6): every row of the table, validation, uniqueness, rights, the uid echo."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from erp_demo.models import Customer, Product, SalesOrder
from erp_demo.realtime import customer_fields
from likha_realtime.access.collections import registry
from tests.likha_realtime.support import (
    ID_SKU_PRICE,
    Roles,
    ask,
    error,
    make,
    no_access,
    no_field,
    open_socket,
    restore_collection,
    run_db,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

NO_ITEM = "You don't have permission to access this item or it does not exist."


def prices() -> dict[str, str]:
    return {sku: str(price) for sku, price in Product.objects.order_by("sku").values_list("sku", "price")}


def grant(group: str, *codenames: str) -> None:
    Group.objects.get(name=group).permissions.add(*Permission.objects.filter(codename__in=codenames))


def items(action: str, **fields: Any) -> dict[str, Any]:
    return {"type": "items", "action": action, "collection": "products", **fields}


@pytest.fixture
async def admin(roles: Roles) -> Iterator[WebsocketCommunicator]:
    comm = await open_socket(roles.path("admin"))
    yield comm
    await comm.disconnect()


# -- the table: create -----------------------------------------------------------------------------------------


async def test_create_one_answers_the_object(admin: WebsocketCommunicator) -> None:
    data = {"name": "Oak Shelf", "sku": "OAK-1", "price": "12.50", "stock": 4}
    reply = await ask(admin, items("create", data=data, query={"fields": ["id", "sku", "price", "stock"]}, uid="i1"))

    key = await run_db(lambda: Product.objects.get(sku="OAK-1").pk)
    assert reply == {"type": "items", "data": {"id": key, "sku": "OAK-1", "price": "12.50", "stock": 4}, "uid": "i1"}
    assert list(reply) == ["type", "data", "uid"]


async def test_create_without_query_answers_every_readable_field(admin: WebsocketCommunicator) -> None:
    reply = await ask(admin, items("create", data={"name": "Oak Shelf", "sku": "OAK-1"}))
    product = await run_db(Product.objects.get, sku="OAK-1")
    assert set(reply["data"]) == {"id", "name", "sku", "price", "stock", "status", "updated"}
    assert (reply["data"]["id"], reply["data"]["price"], reply["data"]["status"]) == (product.pk, "0.00", "active")


async def test_create_many_answers_an_array_in_the_order_sent(admin: WebsocketCommunicator) -> None:
    data = [{"name": "B", "sku": "B-1", "price": "2.00"}, {"name": "A", "sku": "A-1", "price": "1.00"}]
    reply = await ask(admin, items("create", data=data, query=ID_SKU_PRICE, uid="many"))

    keys = await run_db(lambda: dict(Product.objects.values_list("sku", "pk")))
    assert keys["B-1"] < keys["A-1"]
    assert reply == {
        "type": "items",
        "data": [
            {"id": keys["B-1"], "sku": "B-1", "price": "2.00"},
            {"id": keys["A-1"], "sku": "A-1", "price": "1.00"},
        ],
        "uid": "many",
    }


# -- the table: read -------------------------------------------------------------------------------------------


async def test_read_by_id_answers_the_object_and_string_ids_work(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    for sent in (keys["A-1"], str(keys["A-1"])):
        reply = await ask(admin, items("read", id=sent, query=ID_SKU_PRICE, uid="r"))
        assert reply == {"type": "items", "data": {"id": keys["A-1"], "sku": "A-1", "price": "3.00"}, "uid": "r"}


async def test_read_by_ids_answers_an_array_of_the_rows_that_exist(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    reply = await ask(admin, items("read", ids=[keys["A-3"], str(keys["A-1"]), 999999], query={"fields": ["sku"]}))
    assert reply == {"type": "items", "data": [{"sku": "A-1"}, {"sku": "A-3"}]}


async def test_read_by_query_answers_an_array_with_meta(admin: WebsocketCommunicator) -> None:
    await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"), ("B-1", "6.00"))
    query = {
        "fields": "sku,price",
        "filter": {"sku": {"_starts_with": "A-"}},
        "sort": "-price",
        "limit": 2,
        "page": 1,
        "meta": "*",
    }
    reply = await ask(admin, items("read", query=query, uid="q"))
    assert reply == {
        "type": "items",
        "data": [{"sku": "A-3", "price": "5.00"}, {"sku": "A-2", "price": "4.00"}],
        "meta": {"total_count": 4, "filter_count": 3},
        "uid": "q",
    }
    assert list(reply) == ["type", "data", "meta", "uid"]
    page_two = await ask(admin, items("read", query={**query, "page": 2, "meta": None}))
    assert page_two == {"type": "items", "data": [{"sku": "A-1", "price": "3.00"}]}


async def test_read_without_selector_or_query_answers_every_row_up_to_the_default_limit(
    admin: WebsocketCommunicator,
) -> None:
    await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    reply = await ask(admin, items("read"))
    assert [row["sku"] for row in reply["data"]] == ["A-1", "A-2"]
    assert "meta" not in reply


async def test_read_of_a_missing_id_is_forbidden(admin: WebsocketCommunicator) -> None:
    assert await ask(admin, items("read", id=999999, uid="m")) == error("items", "FORBIDDEN", NO_ITEM, uid="m")


# -- the table: update -----------------------------------------------------------------------------------------


async def test_update_by_id_answers_the_object(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    reply = await ask(admin, items("update", id=keys["A-1"], data={"price": "3.75"}, query=ID_SKU_PRICE, uid="u"))
    assert reply == {"type": "items", "data": {"id": keys["A-1"], "sku": "A-1", "price": "3.75"}, "uid": "u"}
    assert await run_db(prices) == {"A-1": "3.75"}


async def test_update_by_ids_answers_an_array(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    ids = [keys["A-2"], str(keys["A-1"])]
    reply = await ask(admin, items("update", ids=ids, data={"price": "1.00"}, query={"fields": ["sku", "price"]}))
    assert reply == {"type": "items", "data": [{"sku": "A-1", "price": "1.00"}, {"sku": "A-2", "price": "1.00"}]}
    assert await run_db(prices) == {"A-1": "1.00", "A-2": "1.00", "A-3": "5.00"}


async def test_update_with_a_missing_id_among_ids_changes_nothing(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    reply = await ask(admin, items("update", ids=[keys["A-1"], 999999], data={"price": "1.00"}, uid="u"))
    assert reply == error("items", "FORBIDDEN", NO_ITEM, uid="u")
    assert await run_db(prices) == {"A-1": "3.00"}


@pytest.mark.parametrize(
    "selector",
    [{}, {"query": {"filter": {"sku": {"_eq": "A-1"}}}}],
    ids=["no-selector", "query-only"],
)
async def test_update_needs_id_or_ids(admin: WebsocketCommunicator, selector: dict[str, Any]) -> None:
    await run_db(make, ("A-1", "3.00"))
    reply = await ask(admin, items("update", data={"price": "1.00"}, uid="u", **selector))
    assert reply == error(
        "items", "INVALID_PAYLOAD", "Either 'ids' or 'id' is required for an UPDATE request.", uid="u"
    )
    assert await run_db(prices) == {"A-1": "3.00"}


# -- the table: delete -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_text", [False, True], ids=["numeric-id", "string-id"])
async def test_delete_by_id_answers_the_id(admin: WebsocketCommunicator, as_text: bool) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    sent = str(keys["A-1"]) if as_text else keys["A-1"]
    assert await ask(admin, items("delete", id=sent, uid="d")) == {"type": "items", "data": keys["A-1"], "uid": "d"}
    assert await run_db(prices) == {"A-2": "4.00"}


async def test_delete_by_ids_answers_the_deleted_ids(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    reply = await ask(admin, items("delete", ids=[keys["A-3"], keys["A-1"]]))
    assert reply == {"type": "items", "data": [keys["A-3"], keys["A-1"]]}
    assert await run_db(prices) == {"A-2": "4.00"}


async def test_delete_by_query_answers_the_deleted_ids(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"), ("B-1", "5.00"))
    reply = await ask(admin, items("delete", query={"filter": {"sku": {"_starts_with": "A-"}}}, uid="dq"))
    assert reply == {"type": "items", "data": [keys["A-1"], keys["A-2"]], "uid": "dq"}
    assert await run_db(prices) == {"B-1": "5.00"}
    nothing = await ask(admin, items("delete", query={"filter": {"sku": {"_eq": "none"}}}))
    assert nothing == {"type": "items", "data": []}


async def test_delete_without_selector_is_invalid_payload(admin: WebsocketCommunicator) -> None:
    await run_db(make, ("A-1", "3.00"))
    assert await ask(admin, items("delete", uid="d")) == error(
        "items", "INVALID_PAYLOAD", "Either 'ids', 'id' or 'query' is required for a DELETE request.", uid="d"
    )
    assert await run_db(prices) == {"A-1": "3.00"}


async def test_delete_of_a_row_others_still_reference_is_invalid_payload(admin: WebsocketCommunicator) -> None:
    def customer_with_order() -> int:
        customer = Customer.objects.create(name="Acme", email="acme@example.com")
        SalesOrder.objects.create(customer=customer, status="confirmed")
        return customer.pk

    key = await run_db(customer_with_order)
    reply = await ask(admin, {"type": "items", "action": "delete", "collection": "customers", "id": key, "uid": "d"})
    assert reply == error(
        "items",
        "INVALID_PAYLOAD",
        'Items of collection "customers" cannot be deleted while other items reference them.',
        uid="d",
    )
    assert await run_db(Customer.objects.filter(pk=key).exists)


# -- validation ------------------------------------------------------------------------------------------------

VALIDATION = [
    pytest.param(
        {"name": "X", "sku": "X-1", "price": "-1"},
        'Validation failed for field "price": Ensure this value is greater than or equal to 0.',
        id="min-value",
    ),
    pytest.param(
        {"name": "X", "sku": "X-1", "price": "abc"},
        'Validation failed for field "price": “abc” value must be a decimal number.',
        id="not-a-decimal",
    ),
    pytest.param(
        {"name": "X", "sku": "X-1", "status": "sold"},
        "Validation failed for field \"status\": Value 'sold' is not a valid choice.",
        id="bad-choice",
    ),
    pytest.param(
        {"name": "X" * 201, "sku": "X-1"},
        'Validation failed for field "name": Ensure this value has at most 200 characters (it has 201).',
        id="too-long",
    ),
    pytest.param({"name": "X"}, 'Validation failed for field "sku": This field cannot be blank.', id="missing"),
    pytest.param(
        {"name": "X", "sku": "X-1", "stock": -3},
        'Validation failed for field "stock": Ensure this value is greater than or equal to 0.',
        id="negative-stock",
    ),
    pytest.param({"name": "X", "sku": "X-1", "colour": "red"}, 'Unknown field "colour" in collection "products".'),
    pytest.param({"name": "X", "sku": "X-1", "id": 5}, 'Field "id" is read-only.', id="primary-key"),
    pytest.param({"name": "X", "sku": "X-1", "updated": "2025-01-01T00:00:00Z"}, 'Field "updated" is read-only.'),
]


@pytest.mark.parametrize(("data", "message"), VALIDATION)
async def test_an_invalid_create_is_invalid_payload_naming_the_field(
    admin: WebsocketCommunicator, data: dict[str, Any], message: str
) -> None:
    assert await ask(admin, items("create", data=data, uid="v")) == error("items", "INVALID_PAYLOAD", message, uid="v")
    assert await run_db(prices) == {}


@pytest.mark.parametrize(("data", "message"), VALIDATION[:4])
async def test_an_invalid_update_is_invalid_payload_and_changes_nothing(
    admin: WebsocketCommunicator, data: dict[str, Any], message: str
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    changes = {key: value for key, value in data.items() if key != "sku"}
    reply = await ask(admin, items("update", id=keys["A-1"], data=changes, uid="v"))
    assert reply == error("items", "INVALID_PAYLOAD", message, uid="v")
    assert await run_db(prices) == {"A-1": "3.00"}


async def test_an_invalid_customer_email_names_the_field(admin: WebsocketCommunicator) -> None:
    message = {"type": "items", "action": "create", "collection": "customers", "uid": "e"}
    reply = await ask(admin, {**message, "data": {"name": "Acme", "email": "not-an-email"}})
    assert reply == error(
        "items", "INVALID_PAYLOAD", 'Validation failed for field "email": Enter a valid email address.', uid="e"
    )


async def test_one_invalid_row_of_a_many_create_creates_nothing(admin: WebsocketCommunicator) -> None:
    data = [{"name": "Fine", "sku": "OK-1"}, {"name": "Bad", "sku": "BAD-1", "price": "-5"}]
    reply = await ask(admin, items("create", data=data, uid="m"))
    assert reply == error(
        "items",
        "INVALID_PAYLOAD",
        'Validation failed for field "price": Ensure this value is greater than or equal to 0.',
        uid="m",
    )
    assert await run_db(prices) == {}


MALFORMED = [
    pytest.param(
        {"type": "items", "collection": "products"},
        'Validation error: "action" must be one of "create", "read", "update", "delete".',
        id="no-action",
    ),
    pytest.param(
        {"type": "items", "action": ["read"], "collection": "products"},
        'Validation error: "action" must be one of "create", "read", "update", "delete".',
        id="action-not-a-string",
    ),
    pytest.param(
        items("upsert"), 'Validation error: "action" must be one of "create", "read", "update", "delete".', id="action"
    ),
    pytest.param(
        {"type": "items", "action": "read"},
        'Validation error: "collection" must be a non-empty string.',
        id="no-collection",
    ),
    pytest.param(items("create"), '"data" is required for a CREATE request.', id="create-without-data"),
    pytest.param(items("create", data=[]), '"data" must not be empty.', id="create-empty-list"),
    pytest.param(items("create", data="name=x"), '"data" must be a non-empty object.', id="create-text"),
    pytest.param(items("create", data=[{"name": "x", "sku": "y"}, 5]), '"data" must be a non-empty object.'),
    pytest.param(items("update", id="A-1", data={}), '"data" must be a non-empty object.', id="update-empty"),
    pytest.param(items("update", id="A-1"), '"data" must be a non-empty object.', id="update-without-data"),
    pytest.param(items("read", ids=[]), '"ids" must be a non-empty array.', id="empty-ids"),
    pytest.param(items("read", ids="1,2"), '"ids" must be a non-empty array.', id="ids-text"),
    pytest.param(items("read", id=True), "Keys must be strings or integers.", id="boolean-id"),
    pytest.param(items("read", id=1.5), "Keys must be strings or integers.", id="float-id"),
    pytest.param(items("delete", ids=[{"id": 1}]), "Keys must be strings or integers.", id="object-key"),
    pytest.param(items("read", id="abc"), 'Invalid key "abc".', id="text-key"),
    pytest.param(items("read", id=10**20), 'Invalid key "100000000000000000000".', id="key-beyond-range"),
    pytest.param(items("read", ids=[1, -(10**20)]), 'Invalid key "-100000000000000000000".', id="ids-beyond-range"),
    pytest.param(items("delete", id=str(10**20)), 'Invalid key "100000000000000000000".', id="delete-beyond-range"),
]


@pytest.mark.parametrize(("message", "text"), MALFORMED)
async def test_a_malformed_items_message_is_invalid_payload(
    admin: WebsocketCommunicator, message: dict[str, Any], text: str
) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    if message.get("id") == "A-1":
        message = {**message, "id": keys["A-1"]}  # an existing row: the data is what is wrong
    assert await ask(admin, {**message, "uid": "x"}) == error("items", "INVALID_PAYLOAD", text, uid="x")
    assert await run_db(prices) == {"A-1": "3.00"}


# -- uniqueness ------------------------------------------------------------------------------------------------


async def test_a_duplicate_sku_is_record_not_unique(admin: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    unique = error("items", "RECORD_NOT_UNIQUE", 'Value for field "sku" has to be unique.', uid="u")

    assert await ask(admin, items("create", data={"name": "Again", "sku": "A-1"}, uid="u")) == unique
    assert await ask(admin, items("update", id=keys["A-2"], data={"sku": "A-1"}, uid="u")) == unique
    batch = [{"name": "One", "sku": "N-1"}, {"name": "Two", "sku": "N-1"}]
    assert await ask(admin, items("create", data=batch, uid="u")) == unique
    assert await run_db(prices) == {"A-1": "3.00", "A-2": "4.00"}


async def test_a_duplicate_only_the_database_finds_fails_the_whole_batch(
    admin: WebsocketCommunicator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers racing past validation: the database's unique constraint refuses the row (IntegrityError, with
    no savepoint of the row's own), the whole write is rolled back, and the socket goes on working."""
    keys = await run_db(make, ("A-1", "3.00"))
    monkeypatch.setattr(Product, "validate_unique", lambda self, exclude=None: None)
    batch = [{"name": "One", "sku": "N-1"}, {"name": "Two", "sku": "A-1"}]
    reply = await ask(admin, items("create", data=batch, uid="u"))
    assert reply == error("items", "RECORD_NOT_UNIQUE", "Value has to be unique.", uid="u")
    assert await run_db(prices) == {"A-1": "3.00"}
    assert (await ask(admin, items("read", id=keys["A-1"], uid="r")))["data"]["sku"] == "A-1"


async def test_a_duplicate_customer_email_is_record_not_unique(admin: WebsocketCommunicator) -> None:
    await run_db(Customer.objects.create, name="Acme", email="acme@example.com")
    message = {"type": "items", "action": "create", "collection": "customers", "uid": 3}
    reply = await ask(admin, {**message, "data": {"name": "Acme 2", "email": "acme@example.com"}})
    assert reply == error("items", "RECORD_NOT_UNIQUE", 'Value for field "email" has to be unique.', uid=3)


# -- rights on writes ------------------------------------------------------------------------------------------


async def test_writing_a_field_the_writer_cannot_read_is_forbidden(roles: Roles) -> None:
    await run_db(grant, "Editors", "add_customer")  # may add customers, but not see (so not set) credit limits
    comm = await open_socket(roles.path("editor"))
    message = {"type": "items", "action": "create", "collection": "customers", "uid": "h"}

    hidden = await ask(comm, {**message, "data": {"name": "Acme", "email": "a@example.com", "credit_limit": "900"}})
    allowed = await ask(comm, {**message, "data": {"name": "Acme", "email": "a@example.com"}})
    await comm.disconnect()

    assert hidden == error("items", "FORBIDDEN", no_field("customers", "credit_limit"), uid="h")
    assert set(allowed["data"]) == {"id", "name", "email", "created"}
    assert await run_db(lambda: list(Customer.objects.values_list("name", "credit_limit"))) == [("Acme", Decimal(0))]


async def test_the_public_role_with_write_rights_still_cannot_write_stock(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"))
    await run_db(grant, "Public", "add_product", "change_product")
    comm = await open_socket(roles.path("public"))

    created = await ask(comm, items("create", data={"name": "P", "sku": "P-1", "stock": 50}, uid="c"))
    updated = await ask(comm, items("update", id=keys["A-1"], data={"stock": 50}, uid="u"))
    shaped = await ask(comm, items("create", data={"name": "P", "sku": "P-1"}, query={"fields": ["stock"]}, uid="q"))
    fine = await ask(comm, items("update", id=keys["A-1"], data={"price": "3.10"}, uid="f"))
    await comm.disconnect()

    forbidden = no_field("products", "stock")
    assert created == error("items", "FORBIDDEN", forbidden, uid="c")
    assert updated == error("items", "FORBIDDEN", forbidden, uid="u")
    assert shaped == error("items", "FORBIDDEN", forbidden, uid="q")  # refused before anything is written
    assert set(fine["data"]) == {"id", "name", "sku", "price", "status", "updated"}
    assert await run_db(lambda: list(Product.objects.values_list("sku", "stock", "price"))) == [
        ("A-1", 0, Decimal("3.10"))
    ]


@pytest.fixture
def customers_hidden_by_a_row_rule() -> Iterator[None]:
    """Re-register customers with a row rule that hides "Hidden" customers from everyone but superusers."""
    original = registry.get("customers")
    assert original is not None
    registry.register("customers", Customer, row_rule=lambda user: ~Q(name="Hidden"), readable_fields=customer_fields)
    yield
    restore_collection(original)


def order_writer_setup() -> dict[str, int]:
    grant("Editors", "add_salesorder", "change_salesorder")
    grant("Public", "view_salesorder", "add_salesorder", "change_salesorder")  # but not view_customer
    visible = Customer.objects.create(name="Visible", email="v@example.com")
    hidden = Customer.objects.create(name="Hidden", email="h@example.com")
    order = SalesOrder.objects.create(customer=visible, status="confirmed")
    return {"visible": visible.pk, "hidden": hidden.pk, "order": order.pk}


NO_SUCH_CUSTOMER = 'Invalid value for field "customer": no such item.'


@pytest.mark.usefixtures("customers_hidden_by_a_row_rule")
@pytest.mark.parametrize(
    ("role", "customer", "expected"),
    [
        pytest.param("editor", "hidden", NO_SUCH_CUSTOMER, id="row-rule-hides-it"),
        pytest.param("editor", 999999, NO_SUCH_CUSTOMER, id="no-such-row"),
        pytest.param("editor", "abc", NO_SUCH_CUSTOMER, id="not-a-key"),
        pytest.param("editor", True, NO_SUCH_CUSTOMER, id="boolean"),
        pytest.param("public", "visible", NO_SUCH_CUSTOMER, id="collection-not-readable"),
        pytest.param("editor", "visible", None, id="visible-row"),
        pytest.param("admin", "hidden", None, id="superuser-sees-it"),
    ],
)
async def test_a_foreign_key_to_a_row_the_writer_cannot_see_is_invalid_payload(
    roles: Roles, role: str, customer: Any, expected: str | None
) -> None:
    keys = await run_db(order_writer_setup)
    value = keys.get(customer, customer) if isinstance(customer, str) else customer
    comm = await open_socket(roles.path(role))
    message = {"type": "items", "collection": "sales_orders", "query": {"fields": ["customer", "status"]}, "uid": "f"}
    created = await ask(comm, {**message, "action": "create", "data": {"customer": value, "status": "confirmed"}})
    updated = await ask(comm, {**message, "action": "update", "id": keys["order"], "data": {"customer": value}})
    await comm.disconnect()

    orders = await run_db(lambda: list(SalesOrder.objects.order_by("pk").values_list("customer_id", flat=True)))
    if expected is None:
        assert created == {"type": "items", "data": {"customer": value, "status": "confirmed"}, "uid": "f"}
        assert updated == {"type": "items", "data": {"customer": value, "status": "confirmed"}, "uid": "f"}
        assert orders == [value, value]
    else:
        assert created == error("items", "INVALID_PAYLOAD", expected, uid="f")
        assert updated == error("items", "INVALID_PAYLOAD", expected, uid="f")
        assert orders == [keys["visible"]]


async def test_a_write_that_leaves_a_row_the_writer_cannot_see_is_forbidden_and_undone(roles: Roles) -> None:
    def setup() -> dict[str, int]:
        grant("Editors", "add_salesorder")  # may add orders, but drafts are only for change_salesorder holders
        customer = Customer.objects.create(name="Acme", email="a@example.com")
        return {"customer": customer.pk}

    keys = await run_db(setup)
    comm = await open_socket(roles.path("editor"))
    message = {"type": "items", "action": "create", "collection": "sales_orders", "uid": "w"}
    draft = await ask(comm, {**message, "data": {"customer": keys["customer"], "status": "draft"}})
    default_draft = await ask(comm, {**message, "data": {"customer": keys["customer"]}})
    confirmed = await ask(comm, {**message, "data": {"customer": keys["customer"], "status": "confirmed"}})
    await comm.disconnect()

    refused = error("items", "FORBIDDEN", "You don't have permission to write this item.", uid="w")
    assert (draft, default_draft) == (refused, refused)
    assert confirmed["data"]["status"] == "confirmed"
    assert await run_db(lambda: list(SalesOrder.objects.values_list("status", flat=True))) == ["confirmed"]


async def test_update_and_delete_cannot_reach_rows_hidden_by_the_row_rule(roles: Roles) -> None:
    def setup() -> dict[str, int]:
        grant("Editors", "delete_salesorder")
        customer = Customer.objects.create(name="Acme", email="a@example.com")
        draft = SalesOrder.objects.create(customer=customer, status="draft")
        return {"draft": draft.pk}

    keys = await run_db(setup)
    comm = await open_socket(roles.path("editor"))
    message = {"type": "items", "collection": "sales_orders", "uid": "h"}
    deleted = await ask(comm, {**message, "action": "delete", "id": keys["draft"]})
    by_query = await ask(comm, {**message, "action": "delete", "query": {"filter": {"status": {"_eq": "draft"}}}})
    await comm.disconnect()

    assert deleted == error("items", "FORBIDDEN", NO_ITEM, uid="h")
    assert by_query == {"type": "items", "data": [], "uid": "h"}
    assert await run_db(lambda: list(SalesOrder.objects.values_list("pk", flat=True))) == [keys["draft"]]


# -- the uid on every error ------------------------------------------------------------------------------------

ERRORS = [
    pytest.param(items("read", id=999999), "FORBIDDEN", id="forbidden-item"),
    pytest.param({**items("read"), "collection": "nope"}, "FORBIDDEN", id="forbidden-collection"),
    pytest.param(items("read", query={"fields": ["nope"]}), "INVALID_QUERY", id="invalid-query"),
    pytest.param(items("delete"), "INVALID_PAYLOAD", id="invalid-payload"),
    pytest.param(items("create", data={"name": "x", "sku": "A-1"}), "RECORD_NOT_UNIQUE", id="not-unique"),
]


@pytest.mark.parametrize("uid", ["text", 42, 0, 2.5, ""])
@pytest.mark.parametrize(("message", "code"), ERRORS)
async def test_every_items_error_echoes_the_uid_as_sent(
    admin: WebsocketCommunicator, message: dict[str, Any], code: str, uid: Any
) -> None:
    await run_db(make, ("A-1", "3.00"))
    reply = await ask(admin, {**message, "uid": uid})
    assert (reply["type"], reply["status"], reply["error"]["code"], reply["uid"]) == ("items", "error", code, uid)
    assert list(reply) == ["type", "status", "error", "uid"]
    assert type(reply["uid"]) is type(uid)


async def test_an_error_without_uid_has_none(admin: WebsocketCommunicator) -> None:
    assert await ask(admin, items("read", id=999999)) == error("items", "FORBIDDEN", NO_ITEM)
    assert await ask(admin, {**items("read"), "collection": "nope"}) == error("items", "FORBIDDEN", no_access("nope"))
