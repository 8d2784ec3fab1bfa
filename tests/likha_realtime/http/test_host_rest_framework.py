"""PROTOCOL §9 holds whatever the host's ``REST_FRAMEWORK`` says: every route answers the same bytes and statuses
with no ``REST_FRAMEWORK`` at all and under a hostile one (session auth, IsAuthenticated, browsable API, a host
exception handler, throttles, pagination, versioning, form parsers, its own negotiation, non-compact ASCII JSON),
and the host's own DRF view keeps the host's policies. Also: one include mounts every route, at the root or under a
prefix.

DRF binds ``APIView``'s default policies and ``JSONRenderer``/``JSONParser``'s JSON options when it is imported,
so a host's settings are in them from the start; ``host_settings`` puts them there, as well as in ``api_settings``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, override_settings
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from erp_demo.management.commands import seed_demo
from erp_demo.models import Product
from tests.likha_realtime.http.host_project import HOST_TEAPOT, HOSTILE_REST_FRAMEWORK, AuthOnly, Prefixed, Root
from tests.likha_realtime.http.test_server_info import PUBLIC_SHAPE
from tests.likha_realtime.support import Roles

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_layer")]

VIEW_DEFAULTS = {
    "renderer_classes": "DEFAULT_RENDERER_CLASSES",
    "parser_classes": "DEFAULT_PARSER_CLASSES",
    "authentication_classes": "DEFAULT_AUTHENTICATION_CLASSES",
    "throttle_classes": "DEFAULT_THROTTLE_CLASSES",
    "permission_classes": "DEFAULT_PERMISSION_CLASSES",
    "content_negotiation_class": "DEFAULT_CONTENT_NEGOTIATION_CLASS",
    "metadata_class": "DEFAULT_METADATA_CLASS",
    "versioning_class": "DEFAULT_VERSIONING_CLASS",
}
NO_ITEM = "You don't have permission to access this item or it does not exist."
INVALID_CREDENTIALS = "Invalid user credentials."


def MISSING(field: str) -> dict[str, Any]:
    return envelope("INVALID_PAYLOAD", f"{field}: This field is required.")


@pytest.fixture(params=["no REST_FRAMEWORK", "hostile REST_FRAMEWORK"])
def host_settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The demo's settings (no REST_FRAMEWORK), or a host's hostile one, bound as DRF binds it at import."""
    if request.param == "no REST_FRAMEWORK":
        with override_settings(ROOT_URLCONF=Root):
            yield request.param
        return
    with override_settings(REST_FRAMEWORK=HOSTILE_REST_FRAMEWORK, ROOT_URLCONF=Root):
        for attribute, setting in VIEW_DEFAULTS.items():
            monkeypatch.setattr(APIView, attribute, getattr(api_settings, setting))
        monkeypatch.setattr(JSONRenderer, "ensure_ascii", True)
        monkeypatch.setattr(JSONRenderer, "compact", False)
        monkeypatch.setattr(JSONRenderer, "strict", False)
        monkeypatch.setattr(JSONParser, "strict", False)
        try:
            yield request.param
        finally:
            cache.clear()  # the throttles' counts


def body_bytes(value: Any) -> bytes:
    """``value`` as our views render it: compact, UTF-8, not ASCII-escaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def envelope(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def call(
    client: Client, method: str, path: str, body: Any = None, content_type: str = "application/json", **headers: Any
) -> tuple[int, bytes]:
    send = getattr(client, method)
    if body is None:
        response = send(path, **headers)
    else:
        text = body if isinstance(body, str) else json.dumps(body)
        response = send(path, text, content_type=content_type, **headers)
    return response.status_code, response.content


def session_client(email: str) -> Client:
    """A browser logged into the host's Django session, whose requests carry no CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model()._default_manager.get(email=email))
    return client


def login(client: Client) -> dict[str, Any]:
    status, content = call(
        client, "post", "/auth/login", {"email": seed_demo.EDITOR_EMAIL, "password": seed_demo.EDITOR_PASSWORD}
    )
    assert status == 200, content
    data: dict[str, Any] = json.loads(content)["data"]
    return data


# -- /auth -------------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("host_settings")
@pytest.mark.parametrize("client_kind", ["plain", "session without CSRF token"])
def test_login_refresh_and_logout_answer_as_the_protocol_says(roles: Roles, client_kind: str) -> None:
    client = Client() if client_kind == "plain" else session_client(seed_demo.ADMIN_EMAIL)
    status, content = call(
        client, "post", "/auth/login", {"email": seed_demo.EDITOR_EMAIL, "password": seed_demo.EDITOR_PASSWORD}
    )
    assert status == 200, content
    pair = json.loads(content)["data"]
    assert list(pair) == ["access_token", "refresh_token", "expires"]
    assert content == body_bytes({"data": pair})

    status, content = call(client, "post", "/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert status == 200, content
    rotated = json.loads(content)["data"]
    assert list(rotated) == ["access_token", "refresh_token", "expires"]

    assert call(client, "post", "/auth/logout", {"refresh_token": rotated["refresh_token"]}) == (204, b"")
    invalid = (401, body_bytes(envelope("INVALID_TOKEN", "Invalid token.")))
    assert call(client, "post", "/auth/logout", {"refresh_token": rotated["refresh_token"]}) == invalid
    assert call(client, "post", "/auth/refresh", {"refresh_token": pair["refresh_token"]}) == invalid


@pytest.mark.usefixtures("host_settings")
@pytest.mark.parametrize(
    ("method", "body", "content_type", "headers", "expected"),
    [
        (
            "post",
            {"email": seed_demo.EDITOR_EMAIL, "password": "wrong"},
            "application/json",
            {},
            (401, envelope("INVALID_CREDENTIALS", INVALID_CREDENTIALS)),
        ),
        (
            "post",
            {},
            "application/json",
            {"HTTP_ACCEPT": "text/html; version=1"},
            (400, {"errors": [*MISSING("email")["errors"], *MISSING("password")["errors"]]}),
        ),
        ("post", "{not json", "application/json", {}, None),
        (
            "post",
            "email=editor%40example.com&password=editor-password",
            "application/x-www-form-urlencoded",
            {},
            (
                415,
                envelope(
                    "UNSUPPORTED_MEDIA_TYPE", 'Unsupported media type "application/x-www-form-urlencoded" in request.'
                ),
            ),
        ),
        (
            "post",
            '{"email": "a@example.com", "password": NaN}',
            "application/json",
            {},
            None,
        ),
        ("get", None, "", {}, (405, envelope("METHOD_NOT_ALLOWED", 'Method "GET" not allowed.'))),
        ("options", None, "", {}, (405, envelope("METHOD_NOT_ALLOWED", 'Method "OPTIONS" not allowed.'))),
        (
            "post",
            {"email": seed_demo.EDITOR_EMAIL, "password": "wrong"},
            "application/json",
            {"HTTP_AUTHORIZATION": "Basic YWRtaW5AZXhhbXBsZS5jb206YWRtaW4tcGFzc3dvcmQ="},
            (401, envelope("INVALID_CREDENTIALS", INVALID_CREDENTIALS)),
        ),
    ],
    ids=[
        "bad credentials",
        "missing fields, html asked",
        "not json",
        "form body",
        "NaN",
        "GET",
        "OPTIONS",
        "host Basic auth header",
    ],
)
def test_login_errors_keep_the_envelope(
    roles: Roles,
    method: str,
    body: Any,
    content_type: str,
    headers: dict[str, str],
    expected: tuple[int, dict[str, Any]] | None,
) -> None:
    status, content = call(Client(), method, "/auth/login?format=api", body, content_type, **headers)
    if expected is None:  # the parser's message: only its start is ours to fix
        assert status == 400, content
        (error,) = json.loads(content)["errors"]
        assert error["extensions"] == {"code": "INVALID_PAYLOAD"}
        assert error["message"].startswith("JSON parse error")
        return
    assert (status, content) == (expected[0], body_bytes(expected[1]))


# -- /items ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def products() -> dict[str, int]:
    made = {
        sku: Product.objects.create(sku=sku, name=name, price=Decimal("2.50"), stock=3).pk
        for sku, name in (("SKU-A", "Café crème"), ("SKU-B", "Bolt"))
    }
    return made


@pytest.mark.usefixtures("host_settings")
def test_items_answer_as_the_protocol_says(roles: Roles, products: dict[str, int]) -> None:
    public = Client()
    first, second = products["SKU-A"], products["SKU-B"]
    rows = [{"id": first, "sku": "SKU-A", "name": "Café crème"}, {"id": second, "sku": "SKU-B", "name": "Bolt"}]
    assert call(public, "get", "/items/products?fields=id,sku,name&sort=sku", HTTP_ACCEPT="text/html") == (
        200,
        body_bytes({"data": rows}),
    )
    assert call(public, "get", f"/items/products/{first}?fields=id,sku,name") == (200, body_bytes({"data": rows[0]}))
    assert call(public, "get", "/items/products/999999") == (403, body_bytes(envelope("FORBIDDEN", NO_ITEM)))
    assert call(public, "patch", f"/items/products/{first}", {"stock": 5}) == (
        403,
        body_bytes(
            envelope("FORBIDDEN", 'You don\'t have permission to access collection "products" or it does not exist.')
        ),
    )
    editor = {"HTTP_AUTHORIZATION": f"Bearer {roles.editor}"}
    assert call(Client(), "patch", f"/items/products/{first}?fields=id,stock", {"stock": 5}, **editor) == (
        200,
        body_bytes({"data": {"id": first, "stock": 5}}),
    )
    assert call(Client(), "get", "/items/products", HTTP_AUTHORIZATION="Bearer nope") == (
        401,
        body_bytes(envelope("INVALID_TOKEN", "Invalid token.")),
    )


@pytest.mark.usefixtures("host_settings")
def test_a_host_session_is_not_a_login_on_items(roles: Roles, products: dict[str, int]) -> None:
    """The admin's Django session (and no CSRF token) acts as the public role: our views take only Bearer tokens."""
    browser = session_client(seed_demo.ADMIN_EMAIL)
    first = products["SKU-A"]
    assert call(browser, "get", f"/items/products/{first}?fields=id,stock") == (  # the public may not read stock
        403,
        body_bytes(
            envelope("FORBIDDEN", 'You don\'t have permission to access field "stock" in collection "products".')
        ),
    )
    assert call(browser, "delete", f"/items/products/{first}")[0] == 403
    assert Product.objects.filter(pk=first).exists()
    admin = {"HTTP_AUTHORIZATION": f"Bearer {roles.admin}"}
    assert call(browser, "delete", f"/items/products/{first}", **admin) == (204, b"")
    assert not Product.objects.filter(pk=first).exists()


# -- /server/info and /graphql -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("host_settings")
def test_server_info_and_graphql_answer_as_the_protocol_says(roles: Roles, products: dict[str, int]) -> None:
    status, content = call(Client(), "get", "/server/info")
    assert status == 200
    assert json.loads(content) == {"data": PUBLIC_SHAPE}
    query = {"query": f'{{ products_by_id(id: "{products["SKU-B"]}") {{ sku stock }} }}'}
    browser = session_client(seed_demo.ADMIN_EMAIL)  # the admin's session is not a login: stock stays hidden
    status, content = call(browser, "post", "/graphql", query)
    column = query["query"].index("stock") + 1
    message = "Cannot query field 'stock' on type 'products'."
    refused = {"message": message, "locations": [{"line": 1, "column": column}]}
    assert (status, json.loads(content)) == (200, {"data": None, "errors": [refused]})
    query = {"query": f'{{ products_by_id(id: "{products["SKU-B"]}") {{ sku }} }}'}
    status, content = call(browser, "post", "/graphql", query)
    assert (status, json.loads(content)) == (200, {"data": {"products_by_id": {"sku": "SKU-B"}}})
    status, content = call(browser, "post", "/graphql", query, HTTP_AUTHORIZATION="Bearer nope")
    assert (status, json.loads(content)) == (401, envelope("INVALID_TOKEN", "Invalid token."))


# -- the host keeps its own policies -----------------------------------------------------------------------------------


def test_the_hosts_own_view_keeps_the_hosts_handler_and_policies(roles: Roles, monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(REST_FRAMEWORK=HOSTILE_REST_FRAMEWORK, ROOT_URLCONF=Root):
        for attribute, setting in VIEW_DEFAULTS.items():
            monkeypatch.setattr(APIView, attribute, getattr(api_settings, setting))
        try:
            # The host's handler shapes the refusal (of its versioning, which its negotiation leaves without a
            # version), rendered by the host's negotiation and browsable renderer.
            refused = Client().get("/host/api", HTTP_ACCEPT="text/html")
            assert (refused.status_code, refused["Content-Type"]) == (HOST_TEAPOT, "text/html; charset=utf-8")
            assert b"&quot;host_error&quot;: &quot;NotAcceptable&quot;" in refused.content
        finally:
            cache.clear()


def test_the_demo_sets_no_global_rest_framework_policy() -> None:
    from django.conf import settings

    assert not hasattr(settings, "REST_FRAMEWORK")
    assert "likha_realtime.logs.middleware.RequestLogMiddleware" not in settings.MIDDLEWARE


# -- mounting ----------------------------------------------------------------------------------------------------------


@override_settings(ROOT_URLCONF=Prefixed)
def test_under_a_prefix_every_http_route_moves_and_the_sockets_do_not(roles: Roles) -> None:
    client = Client()
    assert json.loads(call(client, "post", "/auth/login", {})[1]) == {"host": "login"}  # the host's own route
    status, content = call(
        client,
        "post",
        "/realtime/auth/login",
        {"email": seed_demo.EDITOR_EMAIL, "password": seed_demo.EDITOR_PASSWORD},
    )
    assert status == 200 and list(json.loads(content)["data"]) == ["access_token", "refresh_token", "expires"]
    assert call(client, "get", "/realtime/items/products?fields=id")[0] == 200
    assert call(client, "get", "/items/products")[0] == 404
    status, content = call(client, "get", "/realtime/server/info")
    websocket = json.loads(content)["data"]["websocket"]
    assert (websocket["rest"]["path"], websocket["graphql"]["path"]) == ("/websockets", "/graphql")
    status, content = call(client, "post", "/realtime/graphql", {"query": "{ __typename }"})
    assert (status, json.loads(content)) == (200, {"data": {"__typename": "Query"}})


@override_settings(ROOT_URLCONF=AuthOnly)
def test_realtime_auth_urls_are_includable_alone(roles: Roles) -> None:
    assert call(Client(), "post", "/auth/login", {"email": seed_demo.EDITOR_EMAIL, "password": "wrong"}) == (
        401,
        body_bytes(envelope("INVALID_CREDENTIALS", INVALID_CREDENTIALS)),
    )
    assert call(Client(), "get", "/server/info")[0] == 404
