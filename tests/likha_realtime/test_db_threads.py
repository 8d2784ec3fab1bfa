"""The sockets' database work runs on one thread per process, so it holds at most one connection at a time.

That is what keeps the realtime reader side from taking a server process's database pool from its writers
(docs/DEPLOYMENT.md, "PostgreSQL"): authentication, subscribing, GraphQL resolvers and each event's re-read all go
through asgiref's thread-sensitive executor, which outside a request's ``ThreadSensitiveContext`` is one thread.
Django holds a connection per thread that uses one; every query run here is counted by the thread that ran it
(counting opened connections instead would depend on which earlier test left the shared thread its connection).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db.backends import utils as db_utils

from tests.likha_realtime.graphql.support import communicator, start_subscription
from tests.likha_realtime.support import FRAME_WAIT, Roles, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def announce_stock(key: int, stock: int) -> None:
    from erp_demo.models import Product
    from likha_realtime.events import capture

    Product.objects.filter(pk=key).update(stock=stock)
    capture.publish(Product, "update", [key])


SOCKETS = 10  # of each kind


async def test_every_socket_and_subscription_uses_the_same_single_thread_for_the_database(
    roles: Roles, seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    queried: Counter[int] = Counter()
    execute = db_utils.CursorWrapper._execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        queried[threading.get_ident()] += 1
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(db_utils.CursorWrapper, "_execute", counted)
    rest, graphql = [], []
    try:
        for _ in range(SOCKETS):
            socket = await open_socket(roles.path("editor"))
            await socket.send_json_to(
                {"type": "subscribe", "collection": "products", "event": "update", "item": seeded["shelf"], "uid": 1}
            )
            assert await socket.receive_json_from(timeout=FRAME_WAIT) == {
                "type": "subscription",
                "event": "init",
                "uid": "1",
            }
            rest.append(socket)
            comm = communicator(access_token=roles.editor)
            await comm.__aenter__()
            await start_subscription(comm)
            graphql.append(comm)
        subscribing = set(queried)
        before = Counter(queried)
        # The write comes from a thread of its own, as an HTTP request's does under ASGI.
        writer = await sync_to_async(threading.get_ident, thread_sensitive=False)()
        # Announced with keys only (``capture.publish``): its frames are re-read from the database when delivered
        # (an ORM save's frames are made from the row it committed, with no query at all: test_own_state.py).
        await sync_to_async(announce_stock, thread_sensitive=False)(seeded["shelf"], 77)
        for socket in rest:
            frame = await socket.receive_json_from(timeout=FRAME_WAIT)
            assert frame["event"] == "update" and frame["data"]["stock"] == 77, frame
        for comm in graphql:
            frame = await comm.receive_json_from(timeout=FRAME_WAIT)
            assert frame["payload"]["data"]["products_mutated"]["data"]["stock"] == 77, frame
        delivering = {thread for thread, count in queried.items() if count > before[thread]} - {writer}
    finally:
        for socket in rest:
            await socket.disconnect()
        for comm in graphql:
            await comm.__aexit__(None, None, None)
    assert len(subscribing) == 1, queried  # 20 sockets authenticated and subscribed through one thread
    assert delivering == subscribing, queried  # the events' re-reads for 20 subscribers too
    assert threading.get_ident() not in subscribing  # never the event loop's thread
