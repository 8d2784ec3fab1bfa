"""Text no database can take (a lone surrogate, a NUL character) anywhere a client sends text — keys and ``item``,
query parameters, items ``data`` keys and values — is refused with ``INVALID_QUERY`` or ``INVALID_PAYLOAD`` on the
REST socket, HTTP 400 with the error envelope on ``/items``, and the same code in GraphQL errors; never ``INTERNAL``,
an HTTP 500 or a traceback (PROTOCOL §4). On SQLite and PostgreSQL alike (PostgreSQL refuses NUL in text)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from erp_demo.models import Product
from likha_realtime.http.views import ItemsRenderer
from realtime_auth.http import ContractJSONRenderer
from tests.likha_realtime.graphql.support import post, socket_as
from tests.likha_realtime.http.test_items_view import Api, errors
from tests.likha_realtime.support import Roles, ask, error, open_socket, run_db

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

BAD = [pytest.param("\ud800", id="lone-surrogate"), pytest.param("\x00", id="nul")]
TEXT = "holds text that no database can take (a NUL character or a lone surrogate)."
KEY = ("INVALID_PAYLOAD", f"A key {TEXT}")
DATA = ("INVALID_PAYLOAD", f'"data" {TEXT}')


def in_query(name: str) -> tuple[str, str]:
    return "INVALID_QUERY", f'"{name}" {TEXT}'


def filled(value: Any, bad: str, key: int) -> Any:
    """``value`` with BAD replaced by ``bad`` in every string (object keys too) and "KEY" by ``key``."""
    if value == "KEY":
        return key
    if isinstance(value, str):
        return value.replace("BAD", bad)
    if isinstance(value, list):
        return [filled(item, bad, key) for item in value]
    if isinstance(value, dict):
        return {filled(name, bad, key): filled(item, bad, key) for name, item in value.items()}
    return value


@pytest.fixture
def product() -> int:
    return Product.objects.create(name="Washer", sku="BT-1").pk


# -- the REST socket -------------------------------------------------------------------------------------------

SUBSCRIBE = {"type": "subscribe", "collection": "products"}
ITEMS = {"type": "items", "collection": "products"}
SOCKET_CASES = [
    pytest.param({**SUBSCRIBE, "item": "BAD"}, KEY, id="subscribe-item"),
    pytest.param({**SUBSCRIBE, "query": {"fields": ["BAD"]}}, in_query("fields"), id="subscribe-fields"),
    pytest.param({**SUBSCRIBE, "query": {"fields": "id,BAD"}}, in_query("fields"), id="subscribe-fields-text"),
    pytest.param({**SUBSCRIBE, "query": {"sort": ["BAD"]}}, in_query("sort"), id="subscribe-sort"),
    pytest.param({**SUBSCRIBE, "query": {"sort": "-BAD"}}, in_query("sort"), id="subscribe-sort-text"),
    pytest.param({**SUBSCRIBE, "query": {"meta": ["BAD"]}}, in_query("meta"), id="subscribe-meta"),
    pytest.param({**SUBSCRIBE, "query": {"limit": "BAD"}}, in_query("limit"), id="subscribe-limit"),
    pytest.param({**SUBSCRIBE, "query": {"offset": "1BAD"}}, in_query("offset"), id="subscribe-offset"),
    pytest.param({**SUBSCRIBE, "query": {"page": "BAD"}}, in_query("page"), id="subscribe-page"),
    pytest.param({**SUBSCRIBE, "query": {"BAD": 1}}, in_query("query"), id="subscribe-query-parameter"),
    pytest.param({**SUBSCRIBE, "query": {"filter": {"BAD": {"_eq": 1}}}}, in_query("filter"), id="subscribe-filter"),
    pytest.param({**ITEMS, "action": "read", "id": "BAD"}, KEY, id="read-id"),
    pytest.param({**ITEMS, "action": "read", "ids": ["KEY", "BAD"]}, KEY, id="read-ids"),
    pytest.param({**ITEMS, "action": "read", "query": {"fields": ["BAD"]}}, in_query("fields"), id="read-fields"),
    pytest.param({**ITEMS, "action": "update", "id": "BAD", "data": {"name": "x"}}, KEY, id="update-id"),
    pytest.param({**ITEMS, "action": "update", "ids": ["BAD"], "data": {"name": "x"}}, KEY, id="update-ids"),
    pytest.param({**ITEMS, "action": "update", "id": "KEY", "data": {"name": "BAD"}}, DATA, id="update-value"),
    pytest.param({**ITEMS, "action": "update", "id": "KEY", "data": {"BAD": "x"}}, DATA, id="update-field"),
    pytest.param({**ITEMS, "action": "delete", "id": "BAD"}, KEY, id="delete-id"),
    pytest.param({**ITEMS, "action": "delete", "ids": ["KEY", "BAD"]}, KEY, id="delete-ids"),
    pytest.param({**ITEMS, "action": "create", "data": {"name": "BAD", "sku": "BT-2"}}, DATA, id="create-value"),
    pytest.param({**ITEMS, "action": "create", "data": {"name": "x", "sku": "BT-BAD"}}, DATA, id="create-unique"),
    pytest.param({**ITEMS, "action": "create", "data": {"BAD": "x"}}, DATA, id="create-field"),
    pytest.param(
        {**ITEMS, "action": "create", "data": [{"name": "x", "sku": "BT-3"}, {"name": "BAD", "sku": "BT-4"}]},
        DATA,
        id="create-many",
    ),
]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("frame", "expected"), SOCKET_CASES)
async def test_bad_text_on_the_socket_is_refused_with_the_documented_code(
    roles: Roles, product: int, bad: str, frame: dict[str, Any], expected: tuple[str, str]
) -> None:
    comm = await open_socket(roles.path("admin"))
    reply = await ask(comm, filled({**frame, "uid": "u"}, bad, product))
    assert await ask(comm, {"type": "ping"}) == {"type": "pong"}  # the socket goes on
    await comm.disconnect()
    assert reply == error(frame["type"], *expected, uid="u")
    assert await run_db(lambda: list(Product.objects.values_list("name", "sku"))) == [("Washer", "BT-1")]


@pytest.mark.parametrize("bad", BAD)
async def test_bad_text_in_a_field_name_is_refused_before_the_field_is_looked_up(
    roles: Roles, product: int, bad: str
) -> None:
    """Not ``FORBIDDEN`` naming the field for the editor (nor ``Unknown field`` for the admin): no field has such
    a name, and the refusal must not depend on who asks."""
    for role in ("editor", "admin"):
        comm = await open_socket(roles.path(role))
        frame = {**ITEMS, "action": "update", "id": product, "data": {bad: "x"}, "uid": "u"}
        assert await ask(comm, frame) == error("items", *DATA, uid="u"), role
        await comm.disconnect()


# -- HTTP /items -----------------------------------------------------------------------------------------------

# (method, path, body) with BAD in the body: over HTTP JSON escapes carry any text.
HTTP_BODY_CASES = [
    pytest.param("post", "/items/products", {"name": "BAD", "sku": "BT-2"}, DATA, id="post-value"),
    pytest.param("post", "/items/products", {"BAD": "x"}, DATA, id="post-field"),
    pytest.param("post", "/items/products", [{"name": "x", "sku": "BT-BAD"}], DATA, id="post-many"),
    pytest.param("patch", "/items/products/KEY", {"name": "BAD"}, DATA, id="patch-value"),
    pytest.param("patch", "/items/products/KEY", {"BAD": "x"}, DATA, id="patch-field"),
    pytest.param("patch", "/items/products", {"keys": ["BAD"], "data": {"name": "x"}}, KEY, id="patch-keys"),
    pytest.param("patch", "/items/products", {"keys": ["KEY"], "data": {"name": "BAD"}}, DATA, id="patch-many-value"),
    pytest.param("delete", "/items/products", ["KEY", "BAD"], KEY, id="delete-keys"),
]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("method", "path", "body", "expected"), HTTP_BODY_CASES)
def test_bad_text_in_an_http_body_is_a_400_with_the_envelope(
    roles: Roles, product: int, bad: str, method: str, path: str, body: Any, expected: tuple[str, str]
) -> None:
    admin = Api(f"Bearer {roles.admin}")
    assert admin.call(method, path.replace("KEY", str(product)), filled(body, bad, product)) == (400, errors(*expected))
    assert list(Product.objects.values_list("name", "sku")) == [("Washer", "BT-1")]


# A URL carries no lone surrogate (its bytes are UTF-8); it carries NUL as %00.
HTTP_URL_CASES = [
    pytest.param("get", "/items/products?fields=id,%00", None, in_query("fields"), id="get-fields"),
    pytest.param("get", "/items/products?sort=-%00", None, in_query("sort"), id="get-sort"),
    pytest.param("get", "/items/products?meta=%00", None, in_query("meta"), id="get-meta"),
    pytest.param("get", "/items/products?limit=%00", None, in_query("limit"), id="get-limit"),
    pytest.param("get", "/items/products?page=1%00", None, in_query("page"), id="get-page"),
    pytest.param("get", "/items/products/%00", None, KEY, id="get-id"),
    pytest.param("patch", "/items/products/%00", {"name": "x"}, KEY, id="patch-id"),
    pytest.param("delete", "/items/products/1%00", None, KEY, id="delete-id"),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), HTTP_URL_CASES)
def test_nul_in_an_http_url_is_a_400_with_the_envelope(
    roles: Roles, product: int, method: str, path: str, body: Any, expected: tuple[str, str]
) -> None:
    assert Api(f"Bearer {roles.admin}").call(method, path, body) == (400, errors(*expected))
    assert list(Product.objects.values_list("name", "sku")) == [("Washer", "BT-1")]


@pytest.mark.parametrize("renderer", [ItemsRenderer, ContractJSONRenderer])
def test_a_lone_surrogate_in_a_response_goes_out_as_its_json_escape(renderer: type[ContractJSONRenderer]) -> None:
    """Whatever a message quotes: UTF-8 cannot carry a lone surrogate (DRF's ``encode()`` raised, an HTTP 500)."""
    body = {"errors": [{"message": 'Unknown field "\ud800" in collection "Café".'}]}
    rendered = renderer().render(body)
    assert rendered == b'{"errors":[{"message":"Unknown field \\"\\ud800\\" in collection \\"Caf\\u00e9\\"."}]}'
    assert json.loads(rendered) == body
    if renderer is ItemsRenderer:  # with its own encoder: decimals as text
        assert renderer().render({"data": {"price": Decimal("1.50"), "name": "\ud800"}}) == (
            b'{"data":{"price":"1.50","name":"\\ud800"}}'
        )
    assert renderer().render({"data": "Café"}) == '{"data":"Café"}'.encode()  # UTF-8 as before, when it can


# -- GraphQL, over HTTP and the socket -------------------------------------------------------------------------

# (document, variables, the field refusing them, code and message, the data answered)
GRAPHQL_CASES = [
    pytest.param(
        "mutation($d: JSON!) { create_products_item(data: $d) { id } }",
        {"d": {"name": "BAD", "sku": "BT-2"}},
        "create_products_item",
        DATA,
        id="create-value",
    ),
    pytest.param(
        "mutation($d: JSON!) { create_products_item(data: $d) { id } }",
        {"d": {"BAD": "x"}},
        "create_products_item",
        DATA,
        id="create-field",
    ),
    pytest.param(
        'mutation($id: ID!) { update_products_item(id: $id, data: {name: "x"}) { id } }',
        {"id": "BAD"},
        "update_products_item",
        KEY,
        id="update-id",
    ),
    pytest.param(
        "mutation($id: ID!, $d: JSON!) { update_products_item(id: $id, data: $d) { id } }",
        {"id": "KEY", "d": {"name": "BAD"}},
        "update_products_item",
        DATA,
        id="update-value",
    ),
    pytest.param(
        "mutation($id: ID!) { delete_products_item(id: $id) }", {"id": "BAD"}, "delete_products_item", KEY, id="delete"
    ),
    pytest.param(
        "query($id: ID!) { products_by_id(id: $id) { id } }", {"id": "BAD"}, "products_by_id", KEY, id="by-id"
    ),
    pytest.param(
        "query($s: [String!]) { products(sort: $s) { id } }", {"s": ["BAD"]}, "products", in_query("sort"), id="sort"
    ),
]


def graphql_refusal(document: str, field: str, expected: tuple[str, str]) -> dict[str, Any]:
    code, message = expected
    refusal = {
        "message": message,
        "locations": [{"line": 1, "column": document.index(field) + 1}],
        "path": [field],
        "extensions": {"code": code},
    }
    return {"data": None if field == "products" else {field: None}, "errors": [refusal]}  # products is [products!]!


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("document", "variables", "field", "expected"), GRAPHQL_CASES)
def test_bad_text_in_graphql_variables_is_refused_over_http(
    roles: Roles, product: int, bad: str, document: str, variables: dict[str, Any], field: str, expected: Any
) -> None:
    body = {"query": document, "variables": filled(variables, bad, str(product))}
    assert post(body, "admin") == (200, graphql_refusal(document, field, expected))
    assert list(Product.objects.values_list("name", "sku")) == [("Washer", "BT-1")]


@pytest.mark.parametrize("bad", BAD)
async def test_bad_text_in_graphql_variables_is_refused_over_the_socket(roles: Roles, product: int, bad: str) -> None:
    async with socket_as("admin") as comm:
        for case in GRAPHQL_CASES:
            document, variables, field, expected = case.values
            message = {"query": document, "variables": filled(variables, bad, str(product))}
            await comm.send_json_to({"id": "g", "type": "subscribe", "payload": message})
            reply = await comm.receive_json_from(timeout=10)
            assert reply == {"id": "g", "type": "next", "payload": graphql_refusal(document, field, expected)}, case.id
            assert await comm.receive_json_from(timeout=10) == {"id": "g", "type": "complete"}
    assert await run_db(lambda: list(Product.objects.values_list("name", "sku"))) == [("Washer", "BT-1")]


def test_nul_in_a_graphql_literal_is_refused_and_a_lone_surrogate_does_not_parse(roles: Roles, product: int) -> None:
    document = 'mutation { create_products_item(data: {name: "\\u0000", sku: "BT-2"}) { id } }'
    assert post(document, "admin") == (200, graphql_refusal(document, "create_products_item", DATA))
    document = 'mutation { create_products_item(data: {name: "\\ud800", sku: "BT-2"}) { id } }'
    assert post(document, "admin") == (
        200,
        {
            "data": None,
            "errors": [
                {
                    "message": "Syntax Error: Invalid Unicode escape sequence: '\\ud800'.",
                    "locations": [{"line": 1, "column": 47}],
                }
            ],
        },
    )
    assert list(Product.objects.values_list("name", "sku")) == [("Washer", "BT-1")]
