"""The GraphQL socket and HTTP endpoint: auth modes of §8, rights, mutations that publish, subscriptions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from likha_realtime.graphql.schema import get_schema
from likha_realtime.sockets.graphql import GraphQLConsumer
from realtime_auth import tokens
from realtime_auth.models import User

pytestmark = pytest.mark.django_db(transaction=True)

SUBSCRIBE = "subscription { products_mutated(event: update) { key event data { id name stock } } }"


def realtime(**values: Any) -> override_settings:
    return override_settings(LIKHA_REALTIME={**settings.LIKHA_REALTIME, **values})


@pytest.fixture
def seeded() -> dict[str, int]:
    """Seeds the demo; the keys of a few rows (ids differ between runs of transactional tests)."""
    from erp_demo.models import Customer, Product

    call_command("seed_demo", verbosity=0)
    return {
        "bolt": Product.objects.get(sku="SKU-0001").pk,
        "shelf": Product.objects.get(sku="SKU-0002").pk,
        "third": Product.objects.get(sku="SKU-0003").pk,
        "customer": Customer.objects.order_by("pk").first().pk,
    }


def app() -> Any:
    return GraphQLConsumer.as_asgi(schema=get_schema())


def communicator(path: str = "/graphql", **params: Any) -> GraphQLWebsocketCommunicator:
    return GraphQLWebsocketCommunicator(application=app(), path=path, connection_params=params)


async def pair_for(email: str) -> tokens.TokenPair:
    user = await database_sync_to_async(User.objects.get)(email=email)
    return await database_sync_to_async(tokens.issue_pair)(user)


async def close_of(comm: GraphQLWebsocketCommunicator) -> tuple[int, str | None]:
    output = await comm.receive_output(timeout=3)
    while output["type"] == "websocket.send":
        output = await comm.receive_output(timeout=3)
    assert output["type"] == "websocket.close", output
    return output["code"], output.get("reason")


async def start_subscription(comm: GraphQLWebsocketCommunicator, query: str = SUBSCRIBE) -> None:
    await comm.send_json_to({"id": "s", "type": "subscribe", "payload": {"query": query}})
    await asyncio.sleep(0.2)  # the subscription joins the fan-out before the write


def update_product(pk: int, **values: Any) -> None:
    from erp_demo.models import Product

    product = Product.objects.get(pk=pk)
    for name, value in values.items():
        setattr(product, name, value)
    product.save()


async def test_handshake_mode_logs_in_with_an_access_token_and_receives_updates(seeded: dict[str, int]) -> None:
    pair = await pair_for("editor@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=pair.access) as comm:
            await start_subscription(comm)
            shelf = seeded["shelf"]
            await database_sync_to_async(update_product)(shelf, stock=31)
            frame = await comm.receive_json_from(timeout=3)
            assert frame == {
                "id": "s",
                "type": "next",
                "payload": {
                    "data": {
                        "products_mutated": {
                            "key": str(shelf),
                            "event": "update",
                            "data": {"id": str(shelf), "name": "Steel Shelf", "stock": 31},
                        }
                    }
                },
            }


@pytest.mark.parametrize(
    "params",
    [{}, {"access_token": "garbage"}, {"email": "editor@example.com", "password": "wrong"}, {"refresh_token": "x"}],
    ids=["nothing", "bad-token", "bad-password", "bad-refresh"],
)
async def test_handshake_mode_rejects_missing_or_bad_credentials_with_4403(
    seeded: dict[str, int], params: dict[str, str]
) -> None:
    with realtime(GRAPHQL_AUTH="handshake"):
        comm = communicator(**params)
        assert await comm.connect() == (True, "graphql-transport-ws")
        await comm.send_json_to({"type": "connection_init", "payload": params})
        assert await close_of(comm) == (4403, "Forbidden")


async def test_handshake_mode_closes_4403_when_no_connection_init_arrives_in_time(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="handshake", GRAPHQL_AUTH_TIMEOUT=0.2):
        comm = communicator()
        assert await comm.connect() == (True, "graphql-transport-ws")
        assert await close_of(comm) == (4403, "Forbidden")


async def test_email_password_and_refresh_token_log_in_too(seeded: dict[str, int]) -> None:
    pair = await pair_for("editor@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(email="editor@example.com", password="editor-password") as comm:
            bolt = seeded["bolt"]
            query = f"{{ products_by_id(id: {bolt}) {{ id }} }}"
            await comm.send_json_to({"id": "q", "type": "subscribe", "payload": {"query": query}})
            assert (await comm.receive_json_from())["payload"] == {"data": {"products_by_id": {"id": str(bolt)}}}
        async with communicator(refresh_token=pair.refresh):
            pass
    with pytest.raises(tokens.InvalidToken):
        await database_sync_to_async(tokens.rotate)(pair.refresh)


async def test_strict_mode_refuses_a_socket_without_a_url_token(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="strict"):
        comm = communicator()
        connected, _ = await comm.connect()
        assert connected is False


async def test_strict_mode_accepts_the_url_token(seeded: dict[str, int]) -> None:
    pair = await pair_for("admin@example.com")
    with realtime(GRAPHQL_AUTH="strict"):
        async with communicator(f"/graphql?access_token={pair.access}") as comm:
            query = "{ customers(limit: 1) { id credit_limit } }"
            await comm.send_json_to({"id": "q", "type": "subscribe", "payload": {"query": query}})
            payload = (await comm.receive_json_from())["payload"]
            assert payload["data"]["customers"][0]["id"] == str(seeded["customer"])
            assert payload["data"]["customers"][0]["credit_limit"] is not None  # admin reads the hidden field


async def test_public_mode_runs_as_the_public_role_with_hidden_fields_null(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            bolt = seeded["bolt"]
            query = f"{{ products_by_id(id: {bolt}) {{ id stock }} }}"
            await comm.send_json_to({"id": "q", "type": "subscribe", "payload": {"query": query}})
            assert (await comm.receive_json_from())["payload"] == {
                "data": {"products_by_id": {"id": str(bolt), "stock": None}}
            }


async def test_a_subscription_without_read_permission_is_an_error_not_a_hang(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            await comm.send_json_to(
                {"id": "x", "type": "subscribe", "payload": {"query": "subscription { customers_mutated { key } }"}}
            )
            frame = await comm.receive_json_from(timeout=3)
            assert frame["type"] in ("error", "next")
            errors = frame["payload"] if frame["type"] == "error" else frame["payload"]["errors"]
            assert errors[0]["message"] == (
                'You don\'t have permission to access collection "customers" or it does not exist.'
            )


async def test_token_expiry_closes_4403(seeded: dict[str, int]) -> None:
    from rest_framework_simplejwt.tokens import AccessToken

    pair = await pair_for("editor@example.com")
    access = AccessToken(pair.access)
    access.set_exp(lifetime=__import__("datetime").timedelta(seconds=1))
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=str(access)) as comm:
            assert await close_of(comm) == (4403, "Forbidden")


async def test_a_graphql_mutation_reaches_rest_subscribers(seeded: dict[str, int]) -> None:
    from channels.testing import WebsocketCommunicator

    from likha_realtime.sockets.rest import RestConsumer

    pair = await pair_for("admin@example.com")
    with realtime(REST_AUTH="public", GRAPHQL_AUTH="handshake"):
        rest = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
        assert (await rest.connect())[0]
        await rest.send_json_to(
            {
                "type": "subscribe",
                "collection": "products",
                "event": "update",
                "query": {"fields": ["id", "name"]},
                "uid": "r",
            }
        )
        assert await rest.receive_json_from() == {"type": "subscription", "event": "init", "uid": "r"}
        async with communicator(access_token=pair.access) as comm:
            third = seeded["third"]
            mutation = f'mutation {{ update_products_item(id: {third}, data: {{name: "Via GraphQL"}}) {{ id name }} }}'
            await comm.send_json_to({"id": "m", "type": "subscribe", "payload": {"query": mutation}})
            assert (await comm.receive_json_from())["payload"] == {
                "data": {"update_products_item": {"id": str(third), "name": "Via GraphQL"}}
            }
        assert await rest.receive_json_from(timeout=3) == {
            "type": "subscription",
            "event": "update",
            "data": [{"id": third, "name": "Via GraphQL"}],
            "uid": "r",
        }
        await rest.disconnect()


def test_http_graphql_with_a_bearer_token_and_as_the_public_role(seeded: dict[str, int]) -> None:
    editor = User.objects.get(email="editor@example.com")
    pair = tokens.issue_pair(editor)
    bolt = seeded["bolt"]
    query = json.dumps({"query": f"{{ products_by_id(id: {bolt}) {{ id stock }} }}"})
    public = Client().post("/graphql", query, content_type="application/json")
    assert public.json() == {"data": {"products_by_id": {"id": str(bolt), "stock": None}}}
    authed = Client().post(
        "/graphql", query, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {pair.access}"
    )
    assert authed.json()["data"]["products_by_id"]["stock"] is not None
    bad = Client().post("/graphql", query, content_type="application/json", HTTP_AUTHORIZATION="Bearer nope")
    assert bad.status_code == 401
    assert bad.json() == {"errors": [{"message": "Invalid token.", "extensions": {"code": "INVALID_TOKEN"}}]}


def test_http_graphql_mutations_follow_the_rights(seeded: dict[str, int]) -> None:
    editor = User.objects.get(email="editor@example.com")
    pair = tokens.issue_pair(editor)
    mutation = json.dumps({"query": f"mutation {{ delete_products_item(id: {seeded['bolt']}) }}"})
    response = Client().post(
        "/graphql", mutation, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {pair.access}"
    )
    body = response.json()
    assert body["data"] == {"delete_products_item": None}
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


MATRIX = {
    # role: {collection: (query, create, update, delete)}
    "admin": {
        "products": (True, True, True, True),
        "customers": (True, True, True, True),
        "sales_orders": (True, True, True, True),
    },
    "editor": {
        "products": (True, True, True, False),
        "customers": (True, False, False, False),
        "sales_orders": (True, False, False, False),
    },
    "public": {
        "products": (True, False, False, False),
        "customers": (False, False, False, False),
        "sales_orders": (False, False, False, False),
    },
}
UPDATE_DATA = {"products": "{stock: 1}", "customers": '{name: "Renamed"}', "sales_orders": '{total: "1.00"}'}
CREATE_DATA = {
    "products": '{name: "G", sku: "GQL-%s"}',
    "customers": '{name: "G", email: "gql-%s@example.com"}',
    "sales_orders": '{customer: "%s"}',
}


def graphql_post(query: str, token: str | None) -> dict[str, Any]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = Client().post("/graphql", json.dumps({"query": query}), content_type="application/json", **headers)
    return response.json()


def outcome(body: dict[str, Any]) -> bool:
    """True when the operation ran; False when it was refused as FORBIDDEN (anything else fails the test)."""
    if not body.get("errors"):
        return True
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"], body
    return False


@pytest.mark.parametrize("role", ["admin", "editor", "public"])
@pytest.mark.parametrize("collection", ["products", "customers", "sales_orders"])
def test_the_graphql_rights_matrix(seeded: dict[str, int], role: str, collection: str) -> None:
    from erp_demo.models import Customer, Product, SalesOrder

    token = None
    if role != "public":
        token = tokens.issue_pair(User.objects.get(email=f"{role}@example.com")).access
    model = {"products": Product, "customers": Customer, "sales_orders": SalesOrder}[collection]
    victim = model.objects.exclude(**({"status": "draft"} if collection == "sales_orders" else {})).last()
    if collection == "customers":
        victim = Customer.objects.create(name="Unreferenced", email="unreferenced@example.com")
    expected = MATRIX[role][collection]
    data = CREATE_DATA[collection] % (seeded["customer"] if collection == "sales_orders" else role)
    results = (
        outcome(graphql_post(f"{{ {collection}(limit: 1) {{ id }} }}", token)),
        outcome(graphql_post(f"mutation {{ create_{collection}_item(data: {data}) {{ id }} }}", token)),
        outcome(
            graphql_post(
                f"mutation {{ update_{collection}_item(id: {victim.pk}, data: {UPDATE_DATA[collection]}) {{ id }} }}",
                token,
            )
        ),
        outcome(graphql_post(f"mutation {{ delete_{collection}_item(id: {victim.pk}) }}", token)),
    )
    assert results == expected


async def test_the_legacy_graphql_ws_protocol_works_in_public_mode(seeded: dict[str, int]) -> None:
    from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

    with realtime(GRAPHQL_AUTH="public"):
        comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql", protocol=GRAPHQL_WS_PROTOCOL)
        async with comm:
            await comm.send_json_to({"type": "start", "id": "1", "payload": {"query": SUBSCRIBE}})
            await asyncio.sleep(0.2)  # the subscription joins the fan-out before the write
            shelf = seeded["shelf"]
            await database_sync_to_async(update_product)(shelf, name="Legacy")
            assert await comm.receive_json_from(timeout=3) == {
                "type": "data",
                "id": "1",
                "payload": {
                    "data": {
                        "products_mutated": {
                            "key": str(shelf),
                            "event": "update",
                            "data": {"id": str(shelf), "name": "Legacy", "stock": None},
                        }
                    }
                },
            }
