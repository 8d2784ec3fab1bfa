"""HTTP ``/items/<collection>[/<id>]`` (PROTOCOL §9): GET with §5 query params, POST, PATCH, DELETE, Bearer or public.

Every answer is ``{"data", "meta"}`` or the error envelope ``{"errors":[{"message","extensions":{"code"}}]}``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from erp_demo.models import Customer, Product, SalesOrder, User
from realtime_auth import tokens
from tests.likha_realtime.support import Roles, ask, no_access, no_field, open_socket, run_db

# Plain HTTP tests run in a rolled-back transaction; the socket tests commit, so the socket's threads see the rows.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_layer")]
committing = pytest.mark.django_db(transaction=True)

NO_ITEM = "You don't have permission to access this item or it does not exist."


def make(*rows: tuple[str, str]) -> dict[str, int]:
    """Products by ``(sku, price)``, named after their SKU, 7 in stock; returns sku -> key."""
    return {
        sku: Product.objects.create(sku=sku, name=f"Product {sku}", price=Decimal(price), stock=7).pk
        for sku, price in rows
    }


def prices() -> dict[str, str]:
    return {sku: str(price) for sku, price in Product.objects.order_by("sku").values_list("sku", "price")}


def errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


class Api:
    """A test client speaking JSON as one role (``None``: no Authorization header)."""

    def __init__(self, authorization: str | None) -> None:
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        if params:
            path += "?" + "&".join(f"{key}={value}" for key, value in params.items())
        send = getattr(self.client, method)
        if body is None:
            response = send(path, **self.headers)
        else:
            response = send(path, json.dumps(body), content_type="application/json", **self.headers)
        return response.status_code, (response.json() if response.content else None)


@pytest.fixture
def admin(roles: Roles) -> Api:
    return Api(f"Bearer {roles.admin}")


@pytest.fixture
def editor(roles: Roles) -> Api:
    return Api(f"Bearer {roles.editor}")


@pytest.fixture
def public(roles: Roles) -> Api:
    return Api(None)


# -- GET -------------------------------------------------------------------------------------------------------


def test_get_takes_the_query_params_of_the_socket_and_answers_data_and_meta(admin: Api) -> None:
    keys = make(("A-1", "3.00"), ("A-2", "8.00"), ("A-3", "5.00"), ("B-1", "99.00"))
    status, body = admin.call(
        "get",
        "/items/products",
        fields="id,name,price",
        filter='{"sku":{"_starts_with":"A-"}}',
        sort="-price",
        limit="2",
        meta="*",
    )
    assert (status, body) == (
        200,
        {
            "data": [
                {"id": keys["A-2"], "name": "Product A-2", "price": "8.00"},
                {"id": keys["A-3"], "name": "Product A-3", "price": "5.00"},
            ],
            "meta": {"total_count": 4, "filter_count": 3},
        },
    )
    assert list(body) == ["data", "meta"]


@pytest.mark.parametrize(
    ("params", "skus"),
    [
        ({"sort": "sku", "offset": "1", "limit": "2"}, ["A-2", "A-3"]),
        ({"sort": "sku", "page": "2", "limit": "3"}, ["B-1"]),
        ({"filter": '{"_or":[{"sku":{"_eq":"B-1"}},{"price":{"_lt":4}}]}', "sort": "-sku"}, ["B-1", "A-1"]),
        ({"filter": '{"price":{"_between":[4,9]}}'}, ["A-2", "A-3"]),
    ],
)
def test_get_windows_filters_and_sorts(admin: Api, params: dict[str, str], skus: list[str]) -> None:
    make(("A-1", "3.00"), ("A-2", "8.00"), ("A-3", "5.00"), ("B-1", "99.00"))
    status, body = admin.call("get", "/items/products", fields="sku", **params)
    assert (status, body) == (200, {"data": [{"sku": sku} for sku in skus]})


def test_get_without_meta_answers_data_only(public: Api) -> None:
    make(("A-1", "3.00"))
    status, body = public.call("get", "/items/products", fields="sku")
    assert (status, body) == (200, {"data": [{"sku": "A-1"}]})


def test_get_by_id_answers_the_object(admin: Api) -> None:
    keys = make(("A-1", "3.00"))
    assert admin.call("get", f"/items/products/{keys['A-1']}", fields="id,sku,price,stock") == (
        200,
        {"data": {"id": keys["A-1"], "sku": "A-1", "price": "3.00", "stock": 7}},
    )


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/items/products/999999", {}, (403, errors("FORBIDDEN", NO_ITEM))),
        ("/items/products/abc", {}, (400, errors("INVALID_PAYLOAD", 'Invalid key "abc".'))),
        (
            "/items/products/100000000000000000000",
            {},
            (400, errors("INVALID_PAYLOAD", 'Invalid key "100000000000000000000".')),
        ),
        (
            "/items/products",
            {"fields": "nope"},
            (400, errors("INVALID_QUERY", 'Unknown field "nope" in collection "products".')),
        ),
        (
            "/items/products",
            {"filter": '{"name":{"_like":"x"}}'},
            (
                400,
                errors(
                    "INVALID_QUERY",
                    'Unknown operator "_like" on "name"; expected one of _eq, _neq, _lt, _lte, _gt, _gte, _in, _nin, '
                    "_null, _nnull, _contains, _ncontains, _icontains, _starts_with, _ends_with, _between.",
                ),
            ),
        ),
        (
            "/items/products",
            {"search": "x"},
            (
                400,
                errors(
                    "INVALID_QUERY",
                    'Unknown query parameter "search"; expected one of '
                    "fields, filter, sort, limit, offset, page, meta.",
                ),
            ),
        ),
        ("/items/nope", {}, (403, errors("FORBIDDEN", no_access("nope")))),
    ],
    ids=[
        "missing-row",
        "bad-key",
        "key-beyond-range",
        "unknown-field",
        "unknown-operator",
        "unknown-param",
        "unknown-collection",
    ],
)
def test_get_errors_have_the_envelope_and_status(
    admin: Api, path: str, params: dict[str, str], expected: tuple[int, Any]
) -> None:
    make(("A-1", "3.00"))
    assert admin.call("get", path, **params) == expected


# -- Bearer or public ------------------------------------------------------------------------------------------


def test_a_bearer_token_reads_with_its_user_rights_and_no_header_with_the_public_role(editor: Api, public: Api) -> None:
    keys = make(("A-1", "3.00"))
    path = f"/items/products/{keys['A-1']}"
    assert editor.call("get", path, fields="sku,stock") == (200, {"data": {"sku": "A-1", "stock": 7}})
    assert public.call("get", path, fields="sku,stock") == (
        403,
        errors("FORBIDDEN", no_field("products", "stock")),
    )
    assert set(public.call("get", path)[1]["data"]) == {"id", "name", "sku", "price", "status", "updated"}
    assert public.call("get", "/items/customers") == (403, errors("FORBIDDEN", no_access("customers")))
    assert editor.call("get", "/items/customers") == (200, {"data": []})


def test_an_authorization_header_of_another_scheme_is_the_public_role(roles: Roles) -> None:
    make(("A-1", "3.00"))
    basic = Api("Basic YWRtaW46YWRtaW4=")
    assert basic.call("get", "/items/products", fields="stock") == (
        403,
        errors("FORBIDDEN", no_field("products", "stock")),
    )


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"],
    ids=["garbage", "empty", "3", "non-ascii"],
)
def test_an_invalid_bearer_token_is_401_invalid_token_not_the_public_role(roles: Roles, authorization: str) -> None:
    assert Api(authorization).call("get", "/items/products") == (401, errors("INVALID_TOKEN", "Invalid token."))


def test_a_refresh_token_is_not_a_bearer_token(roles: Roles) -> None:
    pair = tokens.issue_pair(User.objects.get(email="editor@example.com"))
    assert Api(f"Bearer {pair.refresh}").call("get", "/items/products") == (
        401,
        errors("INVALID_TOKEN", "Invalid token."),
    )


def test_the_access_token_of_a_logged_out_session_is_refused(roles: Roles) -> None:
    pair = tokens.issue_pair(User.objects.get(email="editor@example.com"))
    api = Api(f"Bearer {pair.access}")
    assert api.call("get", "/items/products") == (200, {"data": []})

    assert Api(None).call("post", "/auth/logout", {"refresh_token": pair.refresh}) == (204, None)

    assert api.call("get", "/items/products") == (401, errors("INVALID_TOKEN", "Invalid token."))


def test_the_token_of_a_deactivated_user_is_refused(editor: Api) -> None:
    assert editor.call("get", "/items/products")[0] == 200
    User.objects.filter(email="editor@example.com").update(is_active=False)
    assert editor.call("get", "/items/products") == (401, errors("INVALID_TOKEN", "Invalid token."))


# -- POST ------------------------------------------------------------------------------------------------------


def test_post_creates_one_and_answers_the_object(editor: Api) -> None:
    status, body = editor.call(
        "post", "/items/products", {"name": "Oak Shelf", "sku": "OAK-1", "price": "12.50"}, fields="id,sku,price"
    )
    key = Product.objects.get(sku="OAK-1").pk
    assert (status, body) == (200, {"data": {"id": key, "sku": "OAK-1", "price": "12.50"}})


def test_post_creates_many_and_answers_an_array(editor: Api) -> None:
    data = [{"name": "One", "sku": "N-1"}, {"name": "Two", "sku": "N-2", "price": "2.00"}]
    status, body = editor.call("post", "/items/products", data, fields="sku,price")
    assert (status, body) == (200, {"data": [{"sku": "N-1", "price": "0.00"}, {"sku": "N-2", "price": "2.00"}]})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"name": "X", "sku": "X-1", "price": "-1"},
            errors(
                "INVALID_PAYLOAD",
                'Validation failed for field "price": Ensure this value is greater than or equal to 0.',
            ),
        ),
        ({"name": "X"}, errors("INVALID_PAYLOAD", 'Validation failed for field "sku": This field cannot be blank.')),
        ({"name": "X", "sku": "A-1"}, errors("RECORD_NOT_UNIQUE", 'Value for field "sku" has to be unique.')),
        ([], errors("INVALID_PAYLOAD", '"data" must not be empty.')),
        ("text", errors("INVALID_PAYLOAD", '"data" must be a non-empty object.')),
    ],
    ids=["validation", "missing-field", "not-unique", "empty-list", "not-an-object"],
)
def test_a_refused_post_is_400_with_the_envelope_and_creates_nothing(editor: Api, body: Any, expected: Any) -> None:
    make(("A-1", "3.00"))
    assert editor.call("post", "/items/products", body) == (400, expected)
    assert prices() == {"A-1": "3.00"}


def test_a_post_naming_an_unknown_field_is_403_for_a_non_admin_and_400_for_an_admin(editor: Api, admin: Api) -> None:
    body = {"name": "X", "sku": "X-1", "colour": "red"}
    assert editor.call("post", "/items/products", body) == (403, errors("FORBIDDEN", no_field("products", "colour")))
    assert admin.call("post", "/items/products", body) == (
        400,
        errors("INVALID_PAYLOAD", 'Unknown field "colour" in collection "products".'),
    )
    assert prices() == {}


def test_a_post_body_that_is_not_json_is_400_invalid_payload(editor: Api) -> None:
    response = editor.client.post("/items/products", "{not json", content_type="application/json", **editor.headers)
    assert response.status_code == 400
    assert response.json() == errors(
        "INVALID_PAYLOAD",
        "JSON parse error - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    )


def test_post_to_an_id_is_405(editor: Api) -> None:
    keys = make(("A-1", "3.00"))
    assert editor.call("post", f"/items/products/{keys['A-1']}", {"name": "x"}) == (
        405,
        errors("METHOD_NOT_ALLOWED", "POST creates items: no id."),
    )


@pytest.mark.parametrize("role", ["editor", "public"])
def test_post_without_add_permission_is_403(roles: Roles, role: str) -> None:
    api = Api(f"Bearer {roles.editor}" if role == "editor" else None)
    collection = "customers" if role == "editor" else "products"
    body = {"name": "X", "email": "x@example.com"} if role == "editor" else {"name": "X", "sku": "X-1"}
    assert api.call("post", f"/items/{collection}", body) == (403, errors("FORBIDDEN", no_access(collection)))
    assert (Customer.objects.count(), Product.objects.count()) == (0, 0)


# -- PATCH -----------------------------------------------------------------------------------------------------


def test_patch_of_an_id_updates_and_answers_the_object(editor: Api) -> None:
    keys = make(("A-1", "3.00"))
    assert editor.call("patch", f"/items/products/{keys['A-1']}", {"price": "3.50"}, fields="id,price") == (
        200,
        {"data": {"id": keys["A-1"], "price": "3.50"}},
    )
    assert prices() == {"A-1": "3.50"}


def test_patch_of_keys_updates_many_and_answers_an_array(editor: Api) -> None:
    keys = make(("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    body = {"keys": [keys["A-3"], keys["A-1"]], "data": {"price": "1.00"}}
    assert editor.call("patch", "/items/products", body, fields="sku,price") == (
        200,
        {"data": [{"sku": "A-1", "price": "1.00"}, {"sku": "A-3", "price": "1.00"}]},
    )
    assert prices() == {"A-1": "1.00", "A-2": "4.00", "A-3": "1.00"}


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/items/products",
            {"data": {"price": "1.00"}},
            (400, errors("INVALID_PAYLOAD", '"keys" must be a non-empty array.')),
        ),
        (
            "/items/products",
            {"keys": [], "data": {"price": "1.00"}},
            (400, errors("INVALID_PAYLOAD", '"keys" must be a non-empty array.')),
        ),
        ("/items/products/{A-1}", {}, (400, errors("INVALID_PAYLOAD", '"data" must be a non-empty object.'))),
        (
            "/items/products/{A-1}",
            {"sku": "A-2"},
            (400, errors("RECORD_NOT_UNIQUE", 'Value for field "sku" has to be unique.')),
        ),
        (
            "/items/products/{A-1}",
            {"updated": "2025-01-01T00:00:00Z"},
            (400, errors("INVALID_PAYLOAD", 'Field "updated" is read-only.')),
        ),
        ("/items/products/999999", {"price": "1.00"}, (403, errors("FORBIDDEN", NO_ITEM))),
    ],
    ids=["no-keys", "empty-keys", "empty-data", "not-unique", "read-only", "missing-row"],
)
def test_a_refused_patch_has_the_envelope_and_changes_nothing(
    editor: Api, path: str, body: Any, expected: tuple[int, Any]
) -> None:
    keys = make(("A-1", "3.00"), ("A-2", "4.00"))
    assert editor.call("patch", path.replace("{A-1}", str(keys["A-1"])), body) == expected
    assert prices() == {"A-1": "3.00", "A-2": "4.00"}
    assert list(Product.objects.order_by("sku").values_list("sku", flat=True)) == ["A-1", "A-2"]


def test_patch_of_a_hidden_field_or_row_is_403(roles: Roles) -> None:
    customer = Customer.objects.create(name="Acme", email="a@example.com")
    draft = SalesOrder.objects.create(customer=customer, status="draft")
    editor = Api(f"Bearer {roles.editor}")
    assert editor.call("patch", f"/items/customers/{customer.pk}", {"name": "Other"}) == (
        403,
        errors("FORBIDDEN", no_access("customers")),
    )
    assert editor.call("patch", f"/items/sales_orders/{draft.pk}", {"status": "confirmed"}) == (
        403,
        errors("FORBIDDEN", no_access("sales_orders")),
    )
    assert SalesOrder.objects.get().status == "draft"


# -- DELETE ----------------------------------------------------------------------------------------------------


def test_delete_of_an_id_is_204_without_body(admin: Api) -> None:
    keys = make(("A-1", "3.00"), ("A-2", "4.00"))
    assert admin.call("delete", f"/items/products/{keys['A-1']}") == (204, None)
    assert prices() == {"A-2": "4.00"}


def test_delete_of_an_array_of_keys_is_204(admin: Api) -> None:
    keys = make(("A-1", "3.00"), ("A-2", "4.00"), ("A-3", "5.00"))
    assert admin.call("delete", "/items/products", [keys["A-1"], str(keys["A-3"])]) == (204, None)
    assert prices() == {"A-2": "4.00"}


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/items/products", None, (400, errors("INVALID_PAYLOAD", "Send the keys to delete as a JSON array."))),
        ("/items/products", [], (400, errors("INVALID_PAYLOAD", "Send the keys to delete as a JSON array."))),
        ("/items/products", [999999], (403, errors("FORBIDDEN", NO_ITEM))),
        ("/items/products/999999", None, (403, errors("FORBIDDEN", NO_ITEM))),
        ("/items/products", [True], (400, errors("INVALID_PAYLOAD", "Keys must be strings or integers."))),
    ],
    ids=["no-body", "empty-array", "missing-row", "missing-id", "boolean-key"],
)
def test_a_refused_delete_has_the_envelope_and_deletes_nothing(
    admin: Api, path: str, body: Any, expected: tuple[int, Any]
) -> None:
    make(("A-1", "3.00"))
    assert admin.call("delete", path, body) == expected
    assert prices() == {"A-1": "3.00"}


def test_delete_without_delete_permission_is_403(editor: Api) -> None:
    keys = make(("A-1", "3.00"))
    assert editor.call("delete", f"/items/products/{keys['A-1']}") == (403, errors("FORBIDDEN", no_access("products")))
    assert prices() == {"A-1": "3.00"}


def test_delete_of_a_customer_with_orders_is_400(admin: Api) -> None:
    customer = Customer.objects.create(name="Acme", email="a@example.com")
    SalesOrder.objects.create(customer=customer, status="confirmed")
    assert admin.call("delete", f"/items/customers/{customer.pk}") == (
        400,
        errors(
            "INVALID_PAYLOAD", 'Items of collection "customers" cannot be deleted while other items reference them.'
        ),
    )


# -- the same events -------------------------------------------------------------------------------------------


@committing
async def test_http_writes_reach_socket_subscribers_as_the_frames_of_section_5(roles: Roles) -> None:
    api = Api(f"Bearer {roles.admin}")
    watcher: WebsocketCommunicator = await open_socket(roles.path("public"))
    init = await ask(
        watcher, {"type": "subscribe", "collection": "products", "query": {"fields": "id,sku,price"}, "uid": 1}
    )
    assert init == {"type": "subscription", "event": "init", "data": [], "uid": "1"}

    status, body = await run_db(api.call, "post", "/items/products", {"name": "Web", "sku": "W-1", "price": "1.00"})
    key = body["data"]["id"]
    created = await watcher.receive_json_from(timeout=3)
    assert (await run_db(api.call, "patch", f"/items/products/{key}", {"price": "1.25"}))[0] == 200
    updated = await watcher.receive_json_from(timeout=3)
    assert (await run_db(api.call, "delete", f"/items/products/{key}")) == (204, None)
    deleted = await watcher.receive_json_from(timeout=3)
    await watcher.disconnect()

    assert status == 200
    assert created == {
        "type": "subscription",
        "event": "create",
        "data": [{"id": key, "sku": "W-1", "price": "1.00"}],
        "uid": "1",
    }
    assert updated == {
        "type": "subscription",
        "event": "update",
        "data": [{"id": key, "sku": "W-1", "price": "1.25"}],
        "uid": "1",
    }
    assert deleted == {"type": "subscription", "event": "delete", "data": [key], "uid": "1"}


@committing
async def test_an_http_patch_of_keys_is_one_event(roles: Roles) -> None:
    keys = await run_db(make, ("A-1", "3.00"), ("A-2", "4.00"))
    watcher = await open_socket(roles.path("editor"))
    await ask(watcher, {"type": "subscribe", "collection": "products", "query": {"fields": "sku,price"}, "uid": "w"})
    api = Api(f"Bearer {roles.admin}")
    await run_db(api.call, "patch", "/items/products", {"keys": list(keys.values()), "data": {"price": "2.00"}})
    await run_db(api.call, "delete", "/items/products", list(keys.values()))

    assert await watcher.receive_json_from(timeout=3) == {
        "type": "subscription",
        "event": "update",
        "data": [{"sku": "A-1", "price": "2.00"}, {"sku": "A-2", "price": "2.00"}],
        "uid": "w",
    }
    deleted = await watcher.receive_json_from(timeout=3)
    assert sorted(deleted["data"]) == sorted(keys.values())
    await watcher.disconnect()


@pytest.mark.parametrize("text", ["\\ud800", "\\u0000"], ids=["lone-surrogate", "nul"])
def test_bad_text_in_a_filter_is_a_400_with_the_envelope(admin: Api, text: str) -> None:
    status, body = admin.call("get", "/items/products", filter=f'{{"name":{{"_eq":"{text}"}}}}')
    assert (status, body) == (
        400,
        errors(
            "INVALID_QUERY",
            '"filter" holds text that no database can take (a NUL character or a lone surrogate).',
        ),
    )
