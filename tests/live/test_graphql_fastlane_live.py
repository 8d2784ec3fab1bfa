"""GraphQL's fast lane (``likha_realtime.graphql.fastlane``) against strawberry, on a real daphne: the same events, a
plain selection (written at once, without graphql-core) and the same selection behind an inline fragment (which only
strawberry's execution answers) give the same ``next`` payloads, in the same order — for creates, updates and deletes
of one and of several rows, every column type the demo has (key, text, choice, decimal, integer, datetime, a relation's
key), aliases and ``__typename``. The server's counters show the first went the fast lane and the second did not."""

from __future__ import annotations

import itertools
import json
import urllib.request
from typing import Any

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import DaphneProcess
from tests.support import write_until_seen

PRODUCT_FIELDS = "__typename k: key event data { __typename id name sku price stock status updated }"
ORDER_FIELDS = "key event d: data { id customer status total created }"
markers = itertools.count(7000)


def http(server: DaphneProcess, method: str, path: str, body: Any, token: str) -> Any:
    request = urllib.request.Request(
        server.http + path,
        None if body is None else json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def counters(server: DaphneProcess, token: str) -> dict[str, int]:
    request = urllib.request.Request(server.http + "/server/info", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        events: dict[str, int] = json.loads(response.read())["data"]["events"]
    return events


def subscribed(server: DaphneProcess, token: str, queries: dict[str, str]) -> JsonSocket:
    ws = JsonSocket(server.ws_url("/graphql"), subprotocols=["graphql-transport-ws"])
    assert ws.request({"type": "connection_init", "payload": {"access_token": token}}) == {"type": "connection_ack"}
    for op_id, query in queries.items():
        ws.send({"id": op_id, "type": "subscribe", "payload": {"query": query}})
    return ws


def frames_until(ws: JsonSocket, op_id: str, stock: int) -> list[dict[str, Any]]:
    """The payloads of ``op_id`` up to and including the product update that set ``stock`` (the last write)."""
    payloads = []
    while True:
        frame = ws.recv(timeout=10)
        if frame.get("id") != op_id:
            continue
        assert frame["type"] == "next", frame
        payloads.append(frame["payload"])
        data = frame["payload"]["data"]["p"].get("data") if "p" in frame["payload"]["data"] else None
        if data is not None and data.get("stock") == stock:
            return payloads


def test_fast_lane_messages_equal_strawberrys_for_the_same_events(start_server: StartServer) -> None:
    server = start_server()
    admin = server.login(*ADMIN)["access_token"]
    fast = subscribed(
        server,
        admin,
        {
            "p": f"subscription {{ p: products_mutated {{ {PRODUCT_FIELDS} }} }}",
            "o": f"subscription {{ sales_orders_mutated {{ {ORDER_FIELDS} }} }}",
        },
    )
    slow = subscribed(
        server,
        admin,
        {
            "p": f"subscription {{ p: products_mutated {{ ... on products_mutated {{ {PRODUCT_FIELDS} }} }} }}",
            "o": f"subscription {{ sales_orders_mutated {{ ... on sales_orders_mutated {{ {ORDER_FIELDS} }} }} }}",
        },
    )
    with fast, slow:
        product = http(server, "POST", "/items/products", {"sku": "FAST-1", "name": "Fast", "price": "1.50"}, admin)
        key = product["data"]["id"]

        def touch() -> None:
            http(server, "PATCH", f"/items/products/{key}", {"stock": next(markers)}, admin)

        for ws in (fast, slow):  # both subscriptions on both sockets listen: then the measured writes
            write_until_seen(touch, lambda timeout, ws=ws: ws.recv_or_none(timeout))
        last = next(markers)
        http(server, "PATCH", f"/items/products/{key}", {"stock": last}, admin)
        for ws in (fast, slow):
            frames_until(ws, "p", last)
        order = http(server, "GET", "/items/sales_orders?limit=1", None, admin)["data"][0]
        before = counters(server, admin)

        created = [
            http(server, "POST", "/items/products", {"sku": f"FAST-{n}", "name": f"Ünï {n}", "price": "2.05"}, admin)
            for n in (2, 3)
        ]
        keys = [item["data"]["id"] for item in created]
        http(server, "PATCH", "/items/products", {"keys": keys, "data": {"price": "9.99", "status": "archived"}}, admin)
        http(server, "PATCH", f"/items/sales_orders/{order['id']}", {"total": "123.40"}, admin)
        http(server, "DELETE", "/items/products", keys, admin)
        last = next(markers)
        http(server, "PATCH", f"/items/products/{key}", {"stock": last}, admin)

        fast_frames, slow_frames = frames_until(fast, "p", last), frames_until(slow, "p", last)
        after = counters(server, admin)

    # created 2, updated 2 in one write, deleted 2 in one write, the last update: 7 messages each
    assert len(fast_frames) == 7
    assert fast_frames == slow_frames
    events = [payload["data"]["p"]["event"] for payload in fast_frames]
    assert events == ["create", "create", "update", "update", "delete", "delete", "update"]
    assert fast_frames[2]["data"]["p"]["data"]["price"] == "9.99"
    assert fast_frames[0]["data"]["p"]["data"]["__typename"] == "products"
    # Writes to products and sales orders (5 products events, 1 order event): each delivered to the fast socket at
    # once (both its operations), never to the other (its selections need strawberry).
    assert after["fast_lane_deliveries"] - before["fast_lane_deliveries"] == 6
