"""The JSON sockets dispatch each message without channels' hop to the database thread (``aclose_old_connections``),
and still leave that thread no database connection of theirs: every query they make is a ``database_sync_to_async``,
which closes the thread's old connections before and after itself."""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

import pytest
from channels import consumer as channels_consumer
from channels.consumer import AsyncConsumer
from django.db import connections

from likha_realtime.sockets.logs import LogsConsumer
from tests.likha_realtime.support import Roles, ask, connected_socket, open_socket, realtime

pytestmark = pytest.mark.django_db(transaction=True)

CHANNELS_DISPATCH = '''
async def dispatch(self, message):
    """
    Works out what to do with a message.
    """
    handler = getattr(self, get_handler_name(message), None)
    if handler:
        await aclose_old_connections()
        await handler(message)
    else:
        raise ValueError("No handler for message type %s" % message["type"])
'''


def test_channels_dispatch_is_the_one_the_json_sockets_replace() -> None:
    """If channels' dispatch changes, the override in ``JsonSocketConsumer`` must be looked at again."""
    assert textwrap.dedent(inspect.getsource(AsyncConsumer.dispatch)).strip() == CHANNELS_DISPATCH.strip()


class Hops:
    """``aclose_old_connections`` counted (channels' dispatch calls it for every message)."""

    def __init__(self) -> None:
        self.count = 0
        self.real = channels_consumer.aclose_old_connections

    async def __call__(self) -> None:
        self.count += 1
        await self.real()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Hops:
    counted = Hops()
    monkeypatch.setattr(channels_consumer, "aclose_old_connections", counted)
    return counted


async def test_a_rest_socket_makes_no_hop_per_message_and_leaves_the_database_thread_no_connection(
    roles: Roles, seeded: dict[str, int], hops: Hops
) -> None:
    socket = await open_socket(roles.path("editor"))  # its URL token: a database read
    try:
        subscribe = {"type": "subscribe", "collection": "products", "item": seeded["shelf"], "uid": 1}
        assert (await ask(socket, subscribe))["event"] == "init"  # a database read
        assert await ask(socket, {"type": "ping", "uid": 2}) == {"type": "pong", "uid": 2}
        items = {"type": "items", "collection": "products", "action": "read", "id": seeded["shelf"], "uid": 3}
        assert (await ask(socket, items))["type"] == "items"
    finally:
        await socket.disconnect()
    assert hops.count == 0
    assert not await database_thread_connections()


async def test_the_logs_socket_makes_no_hop_per_message(roles: Roles, hops: Hops) -> None:
    with realtime(LOGS_AUTH="strict", HEARTBEAT_ENABLED=False):
        socket = await connected_socket(f"/websockets/logs?access_token={roles.admin}", LogsConsumer)
    try:
        assert await ask(socket, {"type": "ping"}) == {"type": "pong"}
    finally:
        await socket.disconnect()
    assert hops.count == 0
    assert not await database_thread_connections()


def in_memory(connection: Any) -> bool:
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


async def database_thread_connections() -> list[str]:
    """The aliases with an open connection on the thread that runs the sockets' database work (SQLite's in-memory
    test database is never closed by Django: it would be gone)."""
    from asgiref.sync import sync_to_async

    def open_here() -> list[str]:
        return [c.alias for c in connections.all() if c.connection is not None and not in_memory(c)]

    return await sync_to_async(open_here)()
