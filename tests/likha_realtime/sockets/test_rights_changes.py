"""Rights that change while sockets are open (issue 9): REST and GraphQL subscriptions, users and the public role.

On the in-memory channel layer in one process; tests/live/test_rights_live.py does the same across two daphne
processes on Redis. A change is made and committed in the database like an admin would; the socket hears of it
through the channel layer (``auth.reload``) and re-plans what it holds.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group, Permission

from erp_demo.models import Customer, User
from likha_realtime.events.fanout import get_dispatcher
from realtime_auth import tokens
from realtime_auth.revocation import PUBLIC_GROUP
from tests.likha_realtime.graphql.support import communicator, joined
from tests.likha_realtime.support import FRAME_WAIT, ask, open_socket, realtime
from tests.support import wait_until_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

REMOVED = "Subscription removed: the new credentials cannot read it."
CUSTOMERS = "subscription { customers_mutated { key event data { id name credit_limit } } }"
EDITORS_CUSTOMERS = "subscription { customers_mutated { key event data { id name } } }"  # no credit_limit for editors
CUSTOMER_KEYS = "subscription { customers_mutated { key event data { id } } }"


def removed_error(op: str) -> dict[str, Any]:
    return {"id": op, "type": "error", "payload": [{"message": REMOVED, "extensions": {"code": "FORBIDDEN"}}]}


def refused_at_start(op: str, collection: str) -> dict[str, Any]:
    """A subscription the caller may not read: an ``error`` message too (graphql-transport-ws), not ``next``."""
    message = f'You don\'t have permission to access collection "{collection}" or it does not exist.'
    error = {"message": message, "locations": [{"line": 1, "column": 16}], "path": [f"{collection}_mutated"]}
    return {"id": op, "type": "error", "payload": [{**error, "extensions": {"code": "FORBIDDEN"}}]}


def make_user(email: str, *, groups: tuple[str, ...] = (), perms: tuple[str, ...] = (), superuser: bool = False) -> str:
    user = User.objects.create_user(email, "pw", is_superuser=superuser)
    user.groups.set(Group.objects.filter(name__in=groups))
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="erp_demo", codename__in=perms))
    return tokens.issue_pair(user).access


def touch_customer(pk: int, limit: str) -> None:
    customer = Customer.objects.get(pk=pk)
    customer.credit_limit = Decimal(limit)
    customer.name = f"Customer at {limit}"
    customer.save()


def listeners_of(collection: str) -> list[Any]:
    return list(get_dispatcher().listeners.get(collection, ()))


async def subscribe_graphql(comm: Any, query: str, collection: str, op: str = "s") -> None:
    await joined(comm, {"id": op, "type": "subscribe", "payload": {"query": query}}, collection)


def narrowed(listener: Any) -> bool:
    """Re-planned under rights without ``credit_limit`` (not merely suspended while they are read)."""
    subscription = listener.subscription
    return (
        subscription is not None and subscription.plan is not None and ("credit_limit",) not in subscription.plan.output
    )


# -- GraphQL ---------------------------------------------------------------------------------------------------


async def test_a_graphql_subscription_ends_with_an_error_when_its_user_leaves_the_group(seeded: dict[str, int]) -> None:
    token = await database_sync_to_async(make_user)("ex-editor@example.com", groups=("Editors",))
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=token) as comm:
            await subscribe_graphql(comm, EDITORS_CUSTOMERS, "customers")

            def leave() -> None:
                User.objects.get(email="ex-editor@example.com").groups.clear()

            await database_sync_to_async(leave)()

            assert await comm.receive_json_from(timeout=FRAME_WAIT) == removed_error("s")
            await comm.send_json_to({"type": "ping"})  # the socket stays open and answers
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "pong"}
            assert listeners_of("customers") == []
            # The id is reusable. Without the view permission only the key is in the schema the subscription is
            # validated against (graphql.readable): selecting it, the subscription starts and is refused.
            await comm.send_json_to({"id": "s", "type": "subscribe", "payload": {"query": CUSTOMER_KEYS}})
            reply = await comm.receive_json_from(timeout=FRAME_WAIT)
            assert reply == refused_at_start("s", "customers")


async def test_a_demoted_superusers_graphql_subscription_ends(seeded: dict[str, int]) -> None:
    token = await database_sync_to_async(make_user)("boss@example.com", superuser=True)
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=token) as comm:
            await subscribe_graphql(comm, CUSTOMERS, "customers")

            def demote() -> None:
                boss = User.objects.get(email="boss@example.com")
                boss.is_superuser = False
                boss.save()

            await database_sync_to_async(demote)()

            assert await comm.receive_json_from(timeout=FRAME_WAIT) == removed_error("s")


async def test_a_graphql_subscription_is_narrowed_when_a_field_becomes_unreadable(seeded: dict[str, int]) -> None:
    token = await database_sync_to_async(make_user)(
        "finance@example.com", groups=("Editors",), perms=("change_customer",)
    )
    customer = seeded["customer"]
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=token) as comm:
            await subscribe_graphql(comm, CUSTOMERS, "customers")
            await database_sync_to_async(touch_customer)(customer, "100.00")
            before = await comm.receive_json_from(timeout=FRAME_WAIT)
            assert before["payload"]["data"]["customers_mutated"]["data"]["credit_limit"] == "100.00"

            def revoke() -> None:
                User.objects.get(email="finance@example.com").user_permissions.clear()

            await database_sync_to_async(revoke)()
            await wait_until_async(
                lambda: all(narrowed(listener) for listener in listeners_of("customers")),
                message="the subscription was never narrowed",
            )
            await database_sync_to_async(touch_customer)(customer, "200.00")

            after = await comm.receive_json_from(timeout=FRAME_WAIT)
            assert after["payload"]["data"]["customers_mutated"]["data"] == {
                "id": str(customer),
                "name": "Customer at 200.00",
                "credit_limit": None,
            }


async def test_a_public_graphql_subscription_ends_when_the_public_role_loses_the_collection(
    seeded: dict[str, int],
) -> None:
    query = "subscription { products_mutated { key event data { id name } } }"
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            await subscribe_graphql(comm, query, "products")

            def close_the_catalogue() -> None:
                Group.objects.get(name="Public").permissions.remove(Permission.objects.get(codename="view_product"))

            await database_sync_to_async(close_the_catalogue)()

            assert await comm.receive_json_from(timeout=FRAME_WAIT) == removed_error("s")
            await comm.send_json_to({"id": "q", "type": "subscribe", "payload": {"query": "{ products { id } }"}})
            reply = await comm.receive_json_from(timeout=FRAME_WAIT)
            assert reply["payload"]["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_the_legacy_protocol_gets_an_error_then_complete(seeded: dict[str, int]) -> None:
    from strawberry.channels.testing import GraphQLWebsocketCommunicator
    from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

    from tests.likha_realtime.graphql.support import app

    query = "subscription { products_mutated { key event data { id name } } }"
    with realtime(GRAPHQL_AUTH="public"):
        async with GraphQLWebsocketCommunicator(app(), "/graphql", protocol=GRAPHQL_WS_PROTOCOL) as comm:
            await joined(comm, {"id": "1", "type": "start", "payload": {"query": query}}, "products")

            def close_the_catalogue() -> None:
                Group.objects.get(name="Public").permissions.clear()

            await database_sync_to_async(close_the_catalogue)()

            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {
                "type": "error",
                "id": "1",
                "payload": {"message": REMOVED, "extensions": {"code": "FORBIDDEN"}},
            }
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "complete", "id": "1"}


# -- REST, the public role -------------------------------------------------------------------------------------


async def test_public_rest_subscriptions_end_when_the_public_role_loses_the_collection(seeded: dict[str, int]) -> None:
    socket = await open_socket("/websockets")
    init = await ask(socket, {"type": "subscribe", "collection": "products", "query": {"fields": ["id"]}, "uid": "p"})
    assert init["event"] == "init"

    def close_the_catalogue() -> None:
        Group.objects.get(name="Public").permissions.remove(Permission.objects.get(codename="view_product"))

    await database_sync_to_async(close_the_catalogue)()

    assert await socket.receive_json_from(timeout=FRAME_WAIT) == {
        "type": "subscribe",
        "status": "error",
        "error": {"code": "FORBIDDEN", "message": REMOVED},
        "uid": "p",
    }
    reply = await ask(socket, {"type": "items", "action": "read", "collection": "products", "uid": "r"})
    assert (reply["status"], reply["error"]["code"]) == ("error", "FORBIDDEN")
    await socket.disconnect()


async def test_only_sockets_in_the_public_role_listen_for_its_changes(seeded: dict[str, int]) -> None:
    layer = get_channel_layer()
    public = await open_socket("/websockets")
    editor_token = await database_sync_to_async(make_user)("e2@example.com", groups=("Editors",))
    editor = await open_socket(f"/websockets?access_token={editor_token}")
    await ask(public, {"type": "ping"})
    await ask(editor, {"type": "ping"})

    assert len(layer.groups.get(PUBLIC_GROUP, {})) == 1  # the public socket's channel only

    await editor.disconnect()
    await public.disconnect()
    assert not layer.groups.get(PUBLIC_GROUP)


async def test_a_socket_joins_its_groups_again_before_the_layer_forgets_them(
    seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # channels-redis expires group members after a day: a socket open longer must still hear reloads.
    from likha_realtime.sockets.rest import RestConsumer

    layer = get_channel_layer()
    joins: list[str] = []
    real_add = layer.group_add

    async def counting_add(group: str, channel: str) -> None:
        joins.append(group)
        await real_add(group, channel)

    monkeypatch.setattr(layer, "group_add", counting_add)
    monkeypatch.setattr(RestConsumer, "group_refresh", 0.05)
    public = await open_socket("/websockets")

    await wait_until_async(lambda: joins.count(PUBLIC_GROUP) >= 3, message="the public group was never joined again")
    await public.disconnect()
    assert not layer.groups.get(PUBLIC_GROUP)
