"""The sockets' limits (PROTOCOL §4), exact frames: message rate per connection and per user (every socket, re-auth
and the public role included), connections per user, subscriptions per connection, ids per items message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from erp_demo.models import Product
from likha_realtime.limits import UserBuckets
from likha_realtime.sockets.base import RealtimeSocket
from likha_realtime.sockets.logs import LogsConsumer
from tests.likha_realtime.graphql.support import PUBLIC_SUBSCRIBE, SUBSCRIBE, app, close_of, communicator
from tests.likha_realtime.support import FRAME_WAIT, Roles, ask, closed_with, connected_socket, error, realtime

pytestmark = pytest.mark.django_db(transaction=True)

DURATION = 60  # seconds: the buckets do not refill during a test unless its clock moves


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every connection's and user's bucket on a clock the test moves (fresh user buckets for the test)."""
    fake = Clock()
    monkeypatch.setattr(RealtimeSocket, "user_buckets", UserBuckets(fake))
    return fake


def retry(ms: int) -> str:
    return f"Too many messages, retry after {ms}ms."


def limits(**values: Any) -> Any:
    base = {"REST_AUTH": "public", "LOGS_AUTH": "public", "GRAPHQL_AUTH": "public", "HEARTBEAT_ENABLED": False}
    base.setdefault("MESSAGE_RATE_DURATION", DURATION)
    return realtime(**{**base, **values})


# -- message rate ------------------------------------------------------------------------------------------------


async def test_over_the_connection_rate_a_message_is_refused_with_the_wait_and_the_socket_stays(
    roles: Roles, clock: Clock
) -> None:
    with limits(MESSAGE_RATE_POINTS=3, USER_MESSAGE_RATE_POINTS=None):
        comm = await connected_socket(roles.path("editor"))
        assert await ask(comm, {"type": "ping", "uid": 1}) == {"type": "pong", "uid": 1}
        assert await ask(comm, {"type": "ping", "uid": 2}) == {"type": "pong", "uid": 2}
        await comm.send_json_to({"type": "pong"})  # unmetered: it runs nothing
        assert await ask(comm, {"type": "ping", "uid": 3}) == {"type": "pong", "uid": 3}
        # 3 per 60 s: a token every 20 s.
        assert await ask(comm, {"type": "ping", "uid": 4}) == error("server", "REQUESTS_EXCEEDED", retry(20000), uid=4)
        message = {"type": "items", "action": "read", "collection": "products", "uid": "i"}
        assert await ask(comm, message) == error("items", "REQUESTS_EXCEEDED", retry(20000), uid="i")
        sub = {"type": "subscribe", "collection": "products", "uid": "s"}
        clock.now += 5
        assert await ask(comm, sub) == error("subscribe", "REQUESTS_EXCEEDED", retry(15000), uid="s")
        auth = {"type": "auth", "access_token": roles.editor, "uid": "a"}
        assert await ask(comm, auth) == error("auth", "REQUESTS_EXCEEDED", retry(15000), uid="a")
        assert await ask(comm, "not json") == error("server", "REQUESTS_EXCEEDED", retry(15000))  # type: ignore[arg-type]
        clock.now += 15
        assert await ask(comm, {"type": "ping", "uid": 5}) == {"type": "pong", "uid": 5}  # the socket never closed
        await comm.disconnect()


async def test_the_user_rate_holds_over_all_the_users_sockets_logs_and_graphql_included(
    roles: Roles, clock: Clock
) -> None:
    with limits(MESSAGE_RATE_POINTS=100, USER_MESSAGE_RATE_POINTS=4):
        rest_a = await connected_socket(roles.path("admin"))
        rest_b = await connected_socket(roles.path("admin"))
        logs = await connected_socket(f"/websockets/logs?access_token={roles.admin}", LogsConsumer)
        assert await ask(rest_a, {"type": "ping"}) == {"type": "pong"}
        assert await ask(rest_b, {"type": "ping"}) == {"type": "pong"}
        assert await ask(logs, {"type": "ping"}) == {"type": "pong"}
        async with communicator(access_token=roles.admin) as gql:
            await gql.send_json_to({"id": "q", "type": "subscribe", "payload": {"query": "{ products { id } }"}})
            assert (await gql.receive_json_from(timeout=FRAME_WAIT))["type"] == "next"  # the user's fourth
            assert await gql.receive_json_from(timeout=FRAME_WAIT) == {"id": "q", "type": "complete"}
            # The user's bucket is empty (4 per 60 s: 15 s a token), whichever socket asks.
            await gql.send_json_to({"id": "s", "type": "subscribe", "payload": {"query": SUBSCRIBE}})
            assert await gql.receive_json_from(timeout=FRAME_WAIT) == {
                "id": "s",
                "type": "error",
                "payload": [{"message": retry(15000), "extensions": {"code": "REQUESTS_EXCEEDED"}}],
            }
        assert await ask(rest_a, {"type": "ping", "uid": 1}) == error(
            "server", "REQUESTS_EXCEEDED", retry(15000), uid=1
        )
        assert await ask(logs, {"type": "subscribe", "log_level": "info", "uid": 2}) == error(
            "logs", "REQUESTS_EXCEEDED", retry(15000), uid=2
        )
        # Another user is not held back by this one.
        other = await connected_socket(roles.path("editor"))
        assert await ask(other, {"type": "ping"}) == {"type": "pong"}
        for comm in (rest_a, rest_b, logs, other):
            await comm.disconnect()


async def test_re_auth_as_another_user_moves_the_messages_to_that_users_bucket(roles: Roles, clock: Clock) -> None:
    with limits(MESSAGE_RATE_POINTS=100, USER_MESSAGE_RATE_POINTS=2):
        editor = await connected_socket(roles.path("editor"))
        assert await ask(editor, {"type": "ping"}) == {"type": "pong"}
        assert await ask(editor, {"type": "ping"}) == {"type": "pong"}
        assert await ask(editor, {"type": "ping"}) == error("server", "REQUESTS_EXCEEDED", retry(30000))
        public = await connected_socket(roles.path("public"))
        # The auth message is the public connection's (no user yet); the next ones are the editor's.
        auth = {"type": "auth", "access_token": roles.editor, "uid": "a"}
        assert await ask(public, auth) == {"type": "auth", "status": "ok", "uid": "a"}
        assert await ask(public, {"type": "ping"}) == error("server", "REQUESTS_EXCEEDED", retry(30000))
        auth = {"type": "auth", "access_token": roles.admin, "uid": "b"}
        assert await ask(editor, auth) == error("auth", "REQUESTS_EXCEEDED", retry(30000), uid="b")  # still ann's
        await editor.disconnect()
        await public.disconnect()


async def test_the_public_role_is_limited_per_connection(roles: Roles, clock: Clock) -> None:
    with limits(MESSAGE_RATE_POINTS=2, USER_MESSAGE_RATE_POINTS=1):
        comm = await connected_socket(roles.path("public"))
        assert await ask(comm, {"type": "ping"}) == {"type": "pong"}
        assert await ask(comm, {"type": "ping"}) == {"type": "pong"}  # no user bucket for the public role
        assert await ask(comm, {"type": "ping"}) == error("server", "REQUESTS_EXCEEDED", retry(30000))
        await comm.disconnect()


async def test_graphql_pings_over_the_rate_close_4429_and_pongs_and_completes_are_free(
    seeded: dict[str, int], clock: Clock
) -> None:
    with limits(MESSAGE_RATE_POINTS=2, USER_MESSAGE_RATE_POINTS=None):
        async with communicator() as comm:
            for _ in range(5):
                await comm.send_json_to({"type": "pong"})
                await comm.send_json_to({"id": "x", "type": "complete"})
            await comm.send_json_to({"type": "ping"})
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "pong"}
            await comm.send_json_to({"type": "ping"})
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "pong"}
            await comm.send_json_to({"type": "ping"})
            assert await close_of(comm) == (4429, "Too Many Requests")


async def test_legacy_graphql_ws_start_over_the_rate_gets_an_error_for_its_id(
    seeded: dict[str, int], clock: Clock
) -> None:
    with limits(MESSAGE_RATE_POINTS=1, USER_MESSAGE_RATE_POINTS=None):
        comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql", protocol="graphql-ws")
        async with comm:
            await comm.send_json_to({"type": "start", "id": "a", "payload": {"query": PUBLIC_SUBSCRIBE}})
            await comm.send_json_to({"type": "start", "id": "b", "payload": {"query": PUBLIC_SUBSCRIBE}})
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {
                "type": "error",
                "id": "b",
                "payload": {"message": retry(60000), "extensions": {"code": "REQUESTS_EXCEEDED"}},
            }


# -- connections per user --------------------------------------------------------------------------------------


async def test_connections_per_user_over_the_three_sockets(roles: Roles) -> None:
    refused = error("auth", "REQUESTS_EXCEEDED", "Too many connections for this user.")
    with limits(USER_CONN_LIMIT=2):
        first = await connected_socket(roles.path("editor"))
        second = await connected_socket(f"/websockets/logs?access_token={roles.editor}", LogsConsumer)
        third = await connected_socket(roles.path("editor"))
        assert await third.receive_json_from(timeout=FRAME_WAIT) == refused
        assert await closed_with(third) == (4429, "Too Many Requests")
        await second.disconnect()
        again = await connected_socket(roles.path("editor"))  # a place is free again
        assert await ask(again, {"type": "ping"}) == {"type": "pong"}
        # Another user has places of its own; an anonymous socket takes none.
        admin = await connected_socket(roles.path("admin"))
        anonymous = await connected_socket(roles.path("public"))
        assert await ask(admin, {"type": "ping"}) == {"type": "pong"}
        assert await ask(anonymous, {"type": "ping"}) == {"type": "pong"}
        for comm in (first, again, admin, anonymous):
            await comm.disconnect()


async def test_graphql_over_the_user_limit_closes_4429(roles: Roles) -> None:
    with limits(USER_CONN_LIMIT=1):
        first = await connected_socket(roles.path("editor"))
        comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql", connection_params={})
        connected, _ = await comm.connect()  # no connection_init yet: it is sent below
        assert connected
        await comm.send_json_to({"type": "connection_init", "payload": {"access_token": roles.editor}})
        assert await close_of(comm) == (4429, "Too Many Requests")
        await comm.disconnect()
        await first.disconnect()


async def test_re_auth_counts_the_connection_against_the_new_user(roles: Roles) -> None:
    with limits(USER_CONN_LIMIT=1):
        editor = await connected_socket(roles.path("editor"))
        admin = await connected_socket(roles.path("admin"))
        same = {"type": "auth", "access_token": roles.admin, "uid": "again"}
        assert await ask(admin, same) == {"type": "auth", "status": "ok", "uid": "again"}  # its own place
        switch = {"type": "auth", "access_token": roles.editor, "uid": "switch"}
        assert await ask(admin, switch) == error(
            "auth", "REQUESTS_EXCEEDED", "Too many connections for this user.", uid="switch"
        )
        assert await closed_with(admin) == (4429, "Too Many Requests")
        await admin.disconnect()
        # The admin's place was given back when it closed: the editor's socket may become the admin's.
        assert await ask(editor, {"type": "auth", "access_token": roles.admin}) == {"type": "auth", "status": "ok"}
        fresh = await connected_socket(roles.path("editor"))  # and the editor has its place again
        assert await ask(fresh, {"type": "ping"}) == {"type": "pong"}
        await fresh.disconnect()
        await editor.disconnect()
        assert RealtimeSocket.user_connections == {}


# -- subscriptions per connection --------------------------------------------------------------------------------


async def test_subscriptions_per_connection_on_the_rest_socket(roles: Roles, seeded: dict[str, int]) -> None:
    too_many = "Too many subscriptions: at most 2 per connection; unsubscribe first."
    with limits(SUBSCRIPTIONS_MAX=2):
        comm = await connected_socket(roles.path("editor"))
        for uid in ("a", "b"):
            reply = await ask(comm, {"type": "subscribe", "collection": "products", "event": "update", "uid": uid})
            assert reply == {"type": "subscription", "event": "init", "uid": uid}
        third = {"type": "subscribe", "collection": "products", "event": "update", "uid": "c"}
        assert await ask(comm, third) == error("subscribe", "REQUESTS_EXCEEDED", too_many, uid="c")
        no_uid = {"type": "subscribe", "collection": "products", "event": "update"}
        assert await ask(comm, no_uid) == error("subscribe", "REQUESTS_EXCEEDED", too_many)
        again = {"type": "subscribe", "collection": "products", "event": "create", "uid": "a"}  # replaces "a"
        assert await ask(comm, again) == {"type": "subscription", "event": "init", "uid": "a"}
        assert await ask(comm, {"type": "unsubscribe", "uid": "b"}) == {
            "type": "subscription",
            "event": "unsubscribe",
            "uid": "b",
        }
        assert await ask(comm, third) == {"type": "subscription", "event": "init", "uid": "c"}
        await comm.disconnect()


async def test_subscriptions_per_connection_on_the_graphql_socket(seeded: dict[str, int]) -> None:
    with limits(SUBSCRIPTIONS_MAX=1):
        async with communicator() as comm:
            await comm.send_json_to({"id": "a", "type": "subscribe", "payload": {"query": PUBLIC_SUBSCRIBE}})
            await comm.send_json_to({"id": "b", "type": "subscribe", "payload": {"query": PUBLIC_SUBSCRIBE}})
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {
                "id": "b",
                "type": "error",
                "payload": [
                    {
                        "message": "Too many subscriptions: at most 1 per connection; unsubscribe first.",
                        "extensions": {"code": "REQUESTS_EXCEEDED"},
                    }
                ],
            }
            await comm.send_json_to({"id": "a", "type": "complete"})
            await comm.send_json_to(
                {"id": "c", "type": "subscribe", "payload": {"query": "{ products(limit: 1) { id } }"}}
            )
            assert (await comm.receive_json_from(timeout=FRAME_WAIT))["type"] == "next"  # a place again


# -- ids per items message --------------------------------------------------------------------------------------


async def test_ids_per_items_message(roles: Roles, seeded: dict[str, int]) -> None:
    ids = [seeded["bolt"], seeded["shelf"], seeded["third"]]
    with limits(ITEMS_MAX_IDS=2):
        comm = await connected_socket(roles.path("admin"))
        for action in ("read", "update", "delete"):
            message = {"type": "items", "action": action, "collection": "products", "ids": ids, "uid": action}
            if action == "update":
                message["data"] = {"stock": 1}
            assert await ask(comm, message) == error(
                "items", "INVALID_PAYLOAD", "Too many keys: at most 2 per request, received 3.", uid=action
            )
        rows = [{"sku": f"N-{n}", "name": "n", "price": "1.00"} for n in range(3)]
        create = {"type": "items", "action": "create", "collection": "products", "data": rows, "uid": 9}
        assert await ask(comm, create) == error(
            "items", "INVALID_PAYLOAD", "Too many items: at most 2 per request, received 3.", uid=9
        )
        read = {"type": "items", "action": "read", "collection": "products", "ids": ids[:2], "query": {"fields": "id"}}
        assert await ask(comm, read) == {"type": "items", "data": [{"id": ids[0]}, {"id": ids[1]}]}
        await comm.disconnect()


def test_the_ids_cap_holds_on_http_items(roles: Roles, seeded: dict[str, int]) -> None:
    ids = [seeded["bolt"], seeded["shelf"], seeded["third"]]
    headers = roles.headers("admin")
    with limits(ITEMS_MAX_IDS=2):
        client = Client()
        patch = client.patch(
            "/items/products", json.dumps({"keys": ids, "data": {"stock": 1}}), "application/json", **headers
        )
        delete = client.delete("/items/products", json.dumps(ids), "application/json", **headers)
        rows = [{"sku": f"H-{n}", "name": "n", "price": "1.00"} for n in range(3)]
        post = client.post("/items/products", json.dumps(rows), "application/json", **headers)
    too_many = "Too many keys: at most 2 per request, received 3."
    assert (patch.status_code, patch.json()) == (
        400,
        {"errors": [{"message": too_many, "extensions": {"code": "INVALID_PAYLOAD"}}]},
    )
    assert (delete.status_code, delete.json()) == (
        400,
        {"errors": [{"message": too_many, "extensions": {"code": "INVALID_PAYLOAD"}}]},
    )
    assert (post.status_code, post.json()["errors"][0]["message"]) == (
        400,
        "Too many items: at most 2 per request, received 3.",
    )
    assert Product.objects.count() == 30  # nothing was written


async def test_delete_by_query_keeps_the_query_window(roles: Roles, seeded: dict[str, int]) -> None:
    with limits():
        comm = await connected_socket(roles.path("admin"))
        message = {
            "type": "items",
            "action": "delete",
            "collection": "sales_orders",
            "query": {"sort": "id", "limit": 2},
        }
        reply = await ask(comm, message)
        assert len(reply["data"]) == 2
        rest = {"type": "items", "action": "read", "collection": "sales_orders", "query": {"limit": -1}}
        assert len((await ask(comm, rest))["data"]) == 22  # the seed's 24 orders, 2 deleted
        await comm.disconnect()
