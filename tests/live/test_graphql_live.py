"""GraphQL across processes: a subscription on one daphne receives a mutation made on another (one Redis)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import DaphneProcess
from tests.support import write_until_seen


def graphql_http(server: DaphneProcess, query: str, token: str) -> Any:
    request = urllib.request.Request(
        server.http + "/graphql",
        json.dumps({"query": query}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_mutation_on_one_process_reaches_a_subscription_on_another(start_server: StartServer) -> None:
    a, b = start_server(), start_server(WEBSOCKETS_REST_AUTH="public")
    admin = a.login(*ADMIN)["access_token"]
    editor = b.login(*EDITOR)["access_token"]
    key = graphql_http(a, '{ products(filter: {sku: {_eq: "SKU-0006"}}) { id } }', admin)["data"]["products"][0]["id"]
    with JsonSocket(b.ws_url("/graphql"), subprotocols=["graphql-transport-ws"]) as ws:
        assert ws.request({"type": "connection_init", "payload": {"access_token": editor}}) == {
            "type": "connection_ack"
        }
        ws.send(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": "subscription { products_mutated { key event data { id stock } } }"},
            }
        )
        mutation = f"mutation {{ update_products_item(id: {key}, data: {{stock: 606}}) {{ id }} }}"

        def write() -> None:
            assert graphql_http(a, mutation, admin) == {"data": {"update_products_item": {"id": key}}}

        # Retried until the subscription (on the other process) has joined the fan-out; every write is the same.
        expected = {
            "id": "1",
            "type": "next",
            "payload": {
                "data": {"products_mutated": {"key": key, "event": "update", "data": {"id": key, "stock": 606}}}
            },
        }
        assert write_until_seen(write, ws.recv_or_none) == expected
        ws.send({"type": "ping"})
        # Retries that arrived too late to count are events too, each exactly the same; then the pong.
        while (frame := ws.recv()) != {"type": "pong"}:
            assert frame == expected
