"""Events cross processes: two daphne processes on one Redis and one database, a subscriber on B, writes on A."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import ROOT, DaphneProcess, LiveDatabase, RedisServer, server_env


@pytest.fixture(scope="module")
def pair(start_server: StartServer) -> tuple[DaphneProcess, DaphneProcess]:
    return start_server(), start_server(WEBSOCKETS_REST_AUTH="public")


def request(
    server: DaphneProcess, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def subscribed(server: DaphneProcess, credentials: tuple[str, str], **subscribe: Any) -> JsonSocket:
    ws = JsonSocket(server.ws_url())
    assert ws.request({"type": "auth", "email": credentials[0], "password": credentials[1]})["status"] == "ok"
    init = ws.request({"type": "subscribe", **subscribe})
    assert init["type"] == "subscription" and init["event"] == "init", init
    return ws


def test_http_writes_on_a_reach_a_subscriber_on_b(pair: tuple[DaphneProcess, DaphneProcess]) -> None:
    a, b = pair
    token = a.login(*ADMIN)["access_token"]
    query = {"fields": ["id", "sku", "stock"], "filter": {"sku": {"_starts_with": "LIVE-H"}}}
    with subscribed(b, EDITOR, collection="products", query=query, event=None, uid="s1") as ws:
        status, body = request(a, "POST", "/items/products", {"name": "Live", "sku": "LIVE-H1", "stock": 3}, token)
        assert status == 200, body
        key = body["data"]["id"]
        assert ws.recv() == {
            "type": "subscription",
            "event": "create",
            "data": [{"id": key, "sku": "LIVE-H1", "stock": 3}],
            "uid": "s1",
        }
        assert request(a, "PATCH", f"/items/products/{key}", {"stock": 9}, token)[0] == 200
        assert ws.recv() == {
            "type": "subscription",
            "event": "update",
            "data": [{"id": key, "sku": "LIVE-H1", "stock": 9}],
            "uid": "s1",
        }
        assert request(a, "DELETE", f"/items/products/{key}", token=token)[0] == 204
        assert ws.recv() == {"type": "subscription", "event": "delete", "data": [key], "uid": "s1"}


def test_socket_items_on_a_reach_a_subscriber_on_b(pair: tuple[DaphneProcess, DaphneProcess]) -> None:
    a, b = pair
    with (
        subscribed(
            b, ADMIN, collection="products", query={"fields": "id,name", "filter": '{"sku":{"_eq":"LIVE-S1"}}'}, uid=7
        ) as watcher,
        JsonSocket(a.ws_url()) as writer,
    ):
        assert writer.request({"type": "auth", "email": ADMIN[0], "password": ADMIN[1]})["status"] == "ok"
        created = writer.request(
            {
                "type": "items",
                "action": "create",
                "collection": "products",
                "data": {"name": "Socket", "sku": "LIVE-S1"},
                "query": {"fields": ["id"]},
                "uid": "c",
            }
        )
        key = created["data"]["id"]
        assert created == {"type": "items", "data": {"id": key}, "uid": "c"}
        assert watcher.recv() == {
            "type": "subscription",
            "event": "create",
            "data": [{"id": key, "name": "Socket"}],
            "uid": "7",
        }
        writer.request(
            {"type": "items", "action": "update", "collection": "products", "id": key, "data": {"name": "Renamed"}}
        )
        assert watcher.recv() == {
            "type": "subscription",
            "event": "update",
            "data": [{"id": key, "name": "Renamed"}],
            "uid": "7",
        }
        assert writer.request({"type": "items", "action": "delete", "collection": "products", "id": key}) == {
            "type": "items",
            "data": key,
        }
        assert watcher.recv() == {"type": "subscription", "event": "delete", "data": [key], "uid": "7"}


def test_a_batch_job_outside_the_servers_reaches_subscribers(
    pair: tuple[DaphneProcess, DaphneProcess], live_db: LiveDatabase, redis_server: RedisServer
) -> None:
    _, b = pair
    with subscribed(
        b,
        EDITOR,
        collection="products",
        query={"fields": ["sku", "stock"], "filter": {"sku": {"_in": ["SKU-0004", "SKU-0005"]}}},
        uid="bulk",
    ) as ws:
        before = {
            row["sku"]: row["stock"]
            for row in ws.request(
                {
                    "type": "items",
                    "action": "read",
                    "collection": "products",
                    "query": {"fields": ["sku", "stock"], "filter": {"sku": {"_in": ["SKU-0004", "SKU-0005"]}}},
                }
            )["data"]
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "restock", "--sku", "SKU-0004", "--sku", "SKU-0005", "--add", "5"],
            cwd=ROOT,
            env=server_env(live_db.env, {"REDIS_URL": redis_server.url, "REDIS_PREFIX": b.env["REDIS_PREFIX"]}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        frame = ws.recv()
        assert frame["event"] == "update" and frame["uid"] == "bulk"
        assert sorted(frame["data"], key=lambda row: row["sku"]) == [
            {"sku": "SKU-0004", "stock": before["SKU-0004"] + 5},
            {"sku": "SKU-0005", "stock": before["SKU-0005"] + 5},
        ]


def test_public_subscriber_on_b_sees_only_public_fields(pair: tuple[DaphneProcess, DaphneProcess]) -> None:
    a, b = pair
    token = a.login(*ADMIN)["access_token"]
    with JsonSocket(b.ws_url()) as ws:  # b is in public mode: no auth
        init = ws.request({"type": "subscribe", "collection": "products", "query": {"limit": 1}, "uid": "p"})
        assert set(init["data"][0]) == {"id", "name", "sku", "price", "status", "updated"}
        assert request(a, "PATCH", "/items/products/3", {"stock": 77}, token)[0] == 200
        frame = ws.recv()
        assert frame["event"] == "update" and frame["data"][0]["id"] == 3
        assert "stock" not in frame["data"][0]
