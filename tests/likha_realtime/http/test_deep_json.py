"""JSON nested deeper than the parser can go (``[[[…]]]``) is a malformed body or frame — never an HTTP 500 or a
GraphQL socket left open and deaf (hostile review of issue 10)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from erp_demo.models import User
from realtime_auth import tokens
from tests.likha_realtime.graphql.support import app, close_of
from tests.likha_realtime.support import realtime

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
NESTED_TOO_DEEPLY = {
    "errors": [
        {"message": "JSON parse error - nested too deeply", "extensions": {"code": "INVALID_PAYLOAD"}},
    ]
}


def admin_header() -> dict[str, str]:
    admin = User.objects.create_superuser("root@example.com", "pw")
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue_pair(admin).access}"}


@pytest.mark.django_db
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/auth/login"),
        ("post", "/auth/refresh"),
        ("post", "/auth/logout"),
        ("post", "/items/products"),
        ("patch", "/items/products/1"),
    ],
)
def test_the_rest_routes_answer_400(method: str, path: str, body: str) -> None:
    headers = admin_header() if path.startswith("/items") else {}
    response = getattr(Client(), method)(path, body, content_type="application/json", **headers)
    assert (response.status_code, response.json()) == (400, NESTED_TOO_DEEPLY)


@pytest.mark.django_db
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_http_graphql_answers_400(body: str) -> None:
    response = Client().post("/graphql", body, content_type="application/json")
    assert (response.status_code, response.content) == (400, b"Unable to parse request body as JSON")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("seeded")
async def test_the_graphql_socket_closes_4400_instead_of_going_deaf() -> None:
    with realtime(GRAPHQL_AUTH="public", MESSAGE_MAX_BYTES=10_000_000):
        comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql")
        await comm.connect()  # connection_init sent, connection_ack received (public role)
        await comm.send_input({"type": "websocket.receive", "text": '{"type":"ping","x":' + DEEP_ARRAY + "}"})
        code: Any = await close_of(comm)
        assert code == (4400, "WebSocket message must be valid JSON")
