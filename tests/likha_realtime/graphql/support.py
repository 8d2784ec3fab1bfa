"""Helpers of the GraphQL tests: the consumer under test, sockets with connection params, subscriptions joined."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from channels.db import database_sync_to_async
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from erp_demo.models import User
from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.graphql.schema import get_schema
from likha_realtime.sockets.graphql import GraphQLConsumer
from realtime_auth import tokens
from tests.likha_realtime.support import FRAME_WAIT, realtime
from tests.support import wait_until_async

SUBSCRIBE = "subscription { products_mutated(event: update) { key event data { id name stock } } }"
# The public role may not read a product's stock: SUBSCRIBE fails validation for it (graphql.readable).
PUBLIC_SUBSCRIBE = "subscription { products_mutated(event: update) { key event data { id name } } }"


def app() -> Any:
    return GraphQLConsumer.as_asgi(schema=get_schema())


def communicator(path: str = "/graphql", **params: Any) -> GraphQLWebsocketCommunicator:
    return GraphQLWebsocketCommunicator(application=app(), path=path, connection_params=params)


async def pair_for(email: str) -> tokens.TokenPair:
    user = await database_sync_to_async(User.objects.get)(email=email)
    return await database_sync_to_async(tokens.issue_pair)(user)


@asynccontextmanager
async def socket_as(role: str) -> AsyncIterator[GraphQLWebsocketCommunicator]:
    """A GraphQL socket as ``role``: the public role (public mode), or a seeded user (handshake with a token)."""
    if role == "public":
        with realtime(GRAPHQL_AUTH="public"):
            async with communicator() as comm:
                yield comm
        return
    pair = await pair_for(f"{role}@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=pair.access) as comm:
            yield comm


def post(body: str | dict[str, Any], role: str = "public") -> tuple[int, Any]:
    """``POST /graphql`` as ``role`` (admin, editor or public) of ``body`` (a query, or the whole request body);
    the status and the JSON answer."""
    headers = {}
    if role != "public":
        user = User.objects.get(email=f"{role}@example.com")
        headers["HTTP_AUTHORIZATION"] = f"Bearer {tokens.issue_pair(user).access}"
    payload = {"query": body} if isinstance(body, str) else body
    response = Client().post("/graphql", json.dumps(payload), content_type="application/json", **headers)
    return response.status_code, response.json()


async def run(comm: GraphQLWebsocketCommunicator, query: str, op: str = "q") -> dict[str, Any]:
    """The frame answering ``query`` (graphql-transport-ws, operation id ``op``), past the ``complete`` after a
    ``next``, so that the id is free again."""
    await comm.send_json_to({"id": op, "type": "subscribe", "payload": {"query": query}})
    frame: dict[str, Any] = await comm.receive_json_from(timeout=FRAME_WAIT)
    if frame["type"] == "next":
        assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"id": op, "type": "complete"}
    return frame


async def close_of(comm: GraphQLWebsocketCommunicator) -> tuple[int, str | None]:
    """The close code and reason, past any frames sent before the close."""
    output = await comm.receive_output(timeout=FRAME_WAIT)
    while output["type"] == "websocket.send":
        output = await comm.receive_output(timeout=FRAME_WAIT)
    assert output["type"] == "websocket.close", output
    return output["code"], output.get("reason")


async def joined(comm: GraphQLWebsocketCommunicator, message: dict[str, Any], collection: str = "products") -> None:
    """Send a subscription ``message``, then wait until it listens to ``collection``'s events.

    The server starts a subscription in a task of its own and sends nothing when it is ready; a write before that
    is (by design) not delivered to it. The fan-out of this event loop shows when it is: a listener more.
    """
    listeners = get_dispatcher().listeners
    before = len(listeners.get(collection, ()))
    await comm.send_json_to(message)
    await wait_until_async(
        lambda: len(listeners.get(collection, ())) > before, message=f"the subscription never joined {collection}"
    )


async def start_subscription(comm: GraphQLWebsocketCommunicator, query: str = SUBSCRIBE) -> None:
    """A graphql-transport-ws subscription (id ``s``), listening once this returns."""
    await joined(comm, {"id": "s", "type": "subscribe", "payload": {"query": query}})


def update_product(pk: int, **values: Any) -> None:
    from erp_demo.models import Product

    product = Product.objects.get(pk=pk)
    for name, value in values.items():
        setattr(product, name, value)
    product.save()
