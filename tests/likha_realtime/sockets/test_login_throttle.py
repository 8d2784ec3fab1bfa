"""Login throttling on the sockets (PROTOCOL §3, §4, §8): the REST and logs sockets' ``auth`` and GraphQL's
``connection_init`` logins share the HTTP views' counts (by the scope's client address and the account); a refusal
is ``REQUESTS_EXCEEDED`` then what the mode does for a failed auth; GraphQL closes 4429."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from erp_demo.management.commands.seed_demo import ADMIN_EMAIL, ADMIN_PASSWORD, EDITOR_EMAIL, EDITOR_PASSWORD
from likha_realtime.sockets.logs import LogsConsumer
from likha_realtime.sockets.rest import RestConsumer
from realtime_auth import throttle
from tests.likha_realtime.graphql.support import app
from tests.likha_realtime.support import Roles, realtime

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = 900
START = 1_000 * WINDOW + 100  # 800 s are left of the window


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(START)
    monkeypatch.setattr(throttle.LoginThrottle, "timer", fake)
    return fake


def limits(**values: Any) -> Any:
    return realtime(HEARTBEAT_ENABLED=False, **values)


def from_address(comm: Any, address: str) -> Any:
    comm.scope["client"] = [address, 50123]  # as daphne fills it: the peer of the TCP connection
    return comm


async def rest_socket(address: str, consumer: Any = RestConsumer, path: str = "/websockets") -> WebsocketCommunicator:
    comm = from_address(WebsocketCommunicator(consumer.as_asgi(), path), address)
    assert (await comm.connect())[0]
    return comm


def failed(uid: Any) -> dict[str, Any]:
    return {
        "type": "auth",
        "status": "error",
        "error": {"code": "AUTH_FAILED", "message": "Authentication failed."},
        "uid": uid,
    }


def throttled(uid: Any, ms: int = 800_000) -> dict[str, Any]:
    message = f"Too many login attempts, retry after {ms}ms."
    return {"type": "auth", "status": "error", "error": {"code": "REQUESTS_EXCEEDED", "message": message}, "uid": uid}


async def ask(comm: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    await comm.send_json_to(frame)
    return await comm.receive_json_from(timeout=5)


async def outputs_until_close(comm: Any) -> list[Any]:
    seen = []
    while True:
        output = await comm.receive_output(timeout=5)
        seen.append(json.loads(output["text"]) if output["type"] == "websocket.send" else output)
        if output["type"] == "websocket.close":
            return seen


def http_login(email: str, password: str, address: str) -> int:
    body = {"email": email, "password": password}
    return Client(REMOTE_ADDR=address).post("/auth/login", body, content_type="application/json").status_code


# -- the REST socket ------------------------------------------------------------------------------------------------


async def test_public_mode_answers_requests_exceeded_and_stays_open(roles: Roles) -> None:
    with limits(REST_AUTH="public", LOGIN_FAILURES_PER_ACCOUNT=2):
        comm = await rest_socket("10.20.0.1")
        assert await ask(comm, {"type": "auth", "email": ADMIN_EMAIL, "password": "wrong", "uid": 1}) == failed(1)
        assert await ask(comm, {"type": "auth", "email": "ADMIN@example.com ", "password": "x", "uid": 2}) == failed(2)
        right = {"type": "auth", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "uid": "r"}
        assert await ask(comm, right) == throttled("r")
        assert await ask(comm, {"type": "ping", "uid": 9}) == {"type": "pong", "uid": 9}  # open, public role
        await comm.disconnect()
        # The sockets' failures count for HTTP too: one account, one count.
        assert await database_sync_to_async(http_login)(ADMIN_EMAIL, ADMIN_PASSWORD, "10.20.0.2") == 429


@pytest.mark.parametrize(("consumer", "path"), [(RestConsumer, "/websockets"), (LogsConsumer, "/websockets/logs")])
async def test_handshake_mode_answers_requests_exceeded_then_closes_4401(
    roles: Roles, consumer: Any, path: str
) -> None:
    with limits(REST_AUTH="handshake", LOGS_AUTH="handshake", LOGIN_FAILURES_PER_ACCOUNT=2):
        # Locked over HTTP, from other addresses: the socket counts in the same place.
        for address in ("10.23.0.1", "10.23.0.2"):
            assert await database_sync_to_async(http_login)(ADMIN_EMAIL, "wrong", address) == 401
        comm = await rest_socket("10.23.0.3", consumer, path)
        await comm.send_json_to({"type": "auth", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "uid": "h"})
        assert await outputs_until_close(comm) == [
            throttled("h"),
            {"type": "websocket.close", "code": 4401, "reason": "Unauthorized"},
        ]


async def test_a_later_auth_in_handshake_mode_is_refused_the_same_way(roles: Roles, clock: Clock) -> None:
    with limits(REST_AUTH="handshake", LOGIN_FAILURES_PER_ADDRESS=1):
        comm = await rest_socket("10.24.0.1")
        ok = await ask(comm, {"type": "auth", "email": EDITOR_EMAIL, "password": EDITOR_PASSWORD})
        assert ok["status"] == "ok"
        assert await database_sync_to_async(http_login)("x@example.com", "wrong", "10.24.0.1") == 401
        clock.now = START + 600
        await comm.send_json_to({"type": "auth", "email": EDITOR_EMAIL, "password": EDITOR_PASSWORD, "uid": 5})
        assert await outputs_until_close(comm) == [
            throttled(5, 200_000),
            {"type": "websocket.close", "code": 4401, "reason": "Unauthorized"},
        ]


async def test_failures_count_per_socket_address(roles: Roles) -> None:
    with limits(REST_AUTH="public", LOGIN_FAILURES_PER_ADDRESS=1):
        first = await rest_socket("10.25.0.1")
        assert await ask(first, {"type": "auth", "email": "a@example.com", "password": "x", "uid": 1}) == failed(1)
        await first.disconnect()
        again = await rest_socket("10.25.0.1")  # a new connection from the same client: the count holds
        right = {"type": "auth", "email": EDITOR_EMAIL, "password": EDITOR_PASSWORD, "uid": 2}
        assert await ask(again, right) == throttled(2)
        await again.disconnect()
        other = await rest_socket("10.25.0.2")
        assert (await ask(other, right))["status"] == "ok"
        await other.disconnect()


async def test_refresh_logins_count_per_address_and_access_tokens_do_not(roles: Roles) -> None:
    with limits(REST_AUTH="public", LOGIN_ATTEMPTS_PER_ADDRESS=2):
        comm = await rest_socket("10.26.0.1")
        login = await ask(comm, {"type": "auth", "email": EDITOR_EMAIL, "password": EDITOR_PASSWORD})
        refreshed = await ask(comm, {"type": "auth", "refresh_token": login["refresh_token"], "uid": 1})
        assert (refreshed["status"], refreshed["uid"]) == ("ok", 1)
        assert await ask(comm, {"type": "auth", "refresh_token": refreshed["refresh_token"], "uid": 2}) == throttled(2)
        for uid in (3, 4, 5):  # a signature check, not a login: never counted here
            assert await ask(comm, {"type": "auth", "access_token": roles.editor, "uid": uid}) == {
                "type": "auth",
                "status": "ok",
                "uid": uid,
            }
        await comm.disconnect()


# -- GraphQL ----------------------------------------------------------------------------------------------------------


def graphql(address: str, protocol: str, **params: Any) -> GraphQLWebsocketCommunicator:
    comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql", protocol=protocol, connection_params=params)
    return from_address(comm, address)


@pytest.mark.parametrize("mode", ["public", "handshake"])
async def test_a_throttled_connection_init_closes_4429(roles: Roles, mode: str) -> None:
    with limits(GRAPHQL_AUTH=mode, LOGIN_FAILURES_PER_ACCOUNT=1):
        refused = graphql("10.27.0.1", GRAPHQL_TRANSPORT_WS_PROTOCOL)
        assert await refused.connect() == (True, GRAPHQL_TRANSPORT_WS_PROTOCOL)
        await refused.send_json_to({"type": "connection_init", "payload": {"email": EDITOR_EMAIL, "password": "x"}})
        assert await outputs_until_close(refused) == [{"type": "websocket.close", "code": 4403, "reason": "Forbidden"}]
        locked = graphql("10.27.0.2", GRAPHQL_TRANSPORT_WS_PROTOCOL)
        assert await locked.connect() == (True, GRAPHQL_TRANSPORT_WS_PROTOCOL)
        right = {"email": EDITOR_EMAIL, "password": EDITOR_PASSWORD}
        await locked.send_json_to({"type": "connection_init", "payload": right})
        assert await outputs_until_close(locked) == [
            {"type": "websocket.close", "code": 4429, "reason": "Too Many Requests"}
        ]


async def test_legacy_graphql_ws_gets_a_connection_error_then_4429(roles: Roles) -> None:
    with limits(GRAPHQL_AUTH="handshake", LOGIN_FAILURES_PER_ADDRESS=1):
        assert await database_sync_to_async(http_login)("x@example.com", "wrong", "10.28.0.1") == 401
        comm = graphql("10.28.0.1", GRAPHQL_WS_PROTOCOL)
        assert await comm.connect() == (True, GRAPHQL_WS_PROTOCOL)
        payload = {"refresh_token": "x.y.z"}
        await comm.send_json_to({"type": "connection_init", "payload": payload})
        message = "Too many login attempts, retry after 800000ms."
        assert await outputs_until_close(comm) == [
            {"type": "connection_error", "payload": {"code": "REQUESTS_EXCEEDED", "message": message}},
            {"type": "websocket.close", "code": 4429, "reason": "Too Many Requests"},
        ]
