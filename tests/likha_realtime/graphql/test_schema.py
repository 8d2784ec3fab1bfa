"""The GraphQL schema generated from the registry: queries, mutations and subscriptions under the REST rights."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from erp_demo.models import User
from likha_realtime.sockets.rest import RestConsumer
from realtime_auth import tokens
from tests.likha_realtime.graphql.support import communicator, pair_for
from tests.likha_realtime.support import realtime

pytestmark = pytest.mark.django_db(transaction=True)


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


async def test_a_graphql_mutation_reaches_rest_subscribers(seeded: dict[str, int]) -> None:
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
