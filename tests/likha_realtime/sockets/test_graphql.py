"""The GraphQL socket (PROTOCOL §8): auth modes over ``connection_init`` and the URL, close codes, both protocols."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from realtime_auth import tokens, usernames
from tests.likha_realtime.graphql.support import (
    PUBLIC_SUBSCRIBE,
    app,
    close_of,
    communicator,
    joined,
    pair_for,
    run,
    start_subscription,
    update_product,
)
from tests.likha_realtime.support import realtime

pytestmark = pytest.mark.django_db(transaction=True)


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


async def test_public_mode_runs_as_the_public_role_and_a_hidden_field_is_not_in_its_schema(
    seeded: dict[str, int],
) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            bolt = seeded["bolt"]
            assert await run(comm, f"{{ products_by_id(id: {bolt}) {{ id name }} }}") == {
                "id": "q",
                "type": "next",
                "payload": {"data": {"products_by_id": {"id": str(bolt), "name": "Steel Bolt Pack"}}},
            }
            query = f"{{ products_by_id(id: {bolt}) {{ id stock }} }}"
            assert await run(comm, query) == {
                "id": "q",
                "type": "error",
                "payload": [
                    {
                        "message": "Cannot query field 'stock' on type 'products'.",
                        "locations": [{"line": 1, "column": query.index("stock") + 1}],
                    }
                ],
            }


async def test_token_expiry_closes_4403(seeded: dict[str, int]) -> None:
    pair = await pair_for("editor@example.com")
    access = AccessToken(pair.access)
    access.set_exp(lifetime=dt.timedelta(seconds=3))  # room to connect on a busy machine
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=str(access)) as comm:
            assert await close_of(comm) == (4403, "Forbidden")


async def test_the_legacy_graphql_ws_protocol_works_in_public_mode(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql", protocol=GRAPHQL_WS_PROTOCOL)
        async with comm:
            await joined(comm, {"type": "start", "id": "1", "payload": {"query": PUBLIC_SUBSCRIBE}})
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
                            "data": {"id": str(shelf), "name": "Legacy"},
                        }
                    }
                },
            }


@pytest.mark.parametrize("params", [{"username": "ann"}, {"email": "ann@example.com"}], ids=["username", "email"])
async def test_a_user_name_without_a_password_is_a_failed_login_in_public_mode(
    seeded: dict[str, int], params: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A host user model whose USERNAME_FIELD is "username" (Django's auth.User): its name alone asks for a login, as
    # an email alone does; it must not pass as the public role.
    monkeypatch.setattr(usernames, "login_fields", lambda: ("email", "username"))
    with realtime(GRAPHQL_AUTH="public"):
        comm = communicator(**params)
        assert await comm.connect() == (True, "graphql-transport-ws")
        await comm.send_json_to({"type": "connection_init", "payload": params})
        assert await close_of(comm) == (4403, "Forbidden")
