"""Helpers of the GraphQL tests: the consumer under test, sockets with connection params, subscriptions joined."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from strawberry.channels.testing import GraphQLWebsocketCommunicator

from erp_demo.models import User
from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.graphql.schema import get_schema
from likha_realtime.sockets.graphql import GraphQLConsumer
from realtime_auth import tokens
from tests.likha_realtime.support import FRAME_WAIT
from tests.support import wait_until_async

SUBSCRIBE = "subscription { products_mutated(event: update) { key event data { id name stock } } }"


def app() -> Any:
    return GraphQLConsumer.as_asgi(schema=get_schema())


def communicator(path: str = "/graphql", **params: Any) -> GraphQLWebsocketCommunicator:
    return GraphQLWebsocketCommunicator(application=app(), path=path, connection_params=params)


async def pair_for(email: str) -> tokens.TokenPair:
    user = await database_sync_to_async(User.objects.get)(email=email)
    return await database_sync_to_async(tokens.issue_pair)(user)


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
