"""The dispatcher's routes (``events.fanout.Routes``): an event goes to the listeners of any row and to those of its
own rows' items, never to a check of every listener of the collection; a REST socket's routes follow its
subscriptions as they change (subscribe, re-subscribe under the same uid, unsubscribe, close)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from likha_realtime.events.fanout import Routes, get_dispatcher
from tests.likha_realtime.support import Roles, next_frame, open_socket, subscribe
from tests.support import wait_until_async


class Listener:
    def __init__(self, keys: frozenset[str] | None) -> None:
        self.keys = keys

    def item_keys(self, collection: str) -> frozenset[str] | None:
        assert collection == "products"
        return self.keys


def test_an_event_reaches_the_listeners_of_any_row_and_of_its_own_keys_only() -> None:
    routes = Routes("products")
    whole, one, two, both, none = (
        Listener(None),
        Listener(frozenset({"1"})),
        Listener(frozenset({"2"})),
        Listener(frozenset({"1", "2"})),
        Listener(frozenset()),
    )
    plain = object()  # no item_keys: any row
    for listener in (whole, one, two, both, none, plain):
        routes.route(listener)  # type: ignore[arg-type]

    assert set(routes.for_keys({"1"})) == {whole, one, both, plain}
    assert set(routes.for_keys({"2", "3"})) == {whole, two, both, plain}
    assert set(routes.for_keys({"9"})) == {whole, plain}

    one.keys = frozenset({"3"})  # its subscriptions changed
    routes.route(one)  # type: ignore[arg-type]
    assert set(routes.for_keys({"1"})) == {whole, both, plain}
    assert set(routes.for_keys({"3"})) == {whole, one, plain}

    for listener in (whole, one, two, both, none, plain):
        routes.remove(listener)  # type: ignore[arg-type]
    assert routes.for_keys({"1", "2", "3"}) == [] and not routes.by_key and not routes.any_row


def routed(consumer: Any) -> tuple[bool, set[str]]:
    """How the dispatcher routes ``consumer`` on products: (any row, the item keys it is listed under)."""
    routes = get_dispatcher().routes["products"]
    return consumer in routes.any_row, {key for key, members in routes.by_key.items() if consumer in members}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_layer")
async def test_a_rest_sockets_routes_follow_its_subscriptions(roles: Roles, seeded: dict[str, int]) -> None:
    first, second = sorted(seeded.values())[:2]
    socket = await open_socket(roles.path("editor"))
    await subscribe(socket, item=first, uid="a")
    (consumer,) = get_dispatcher().listeners["products"]
    assert routed(consumer) == (False, {str(first)})

    await subscribe(socket, item=second, uid="b")
    assert routed(consumer) == (False, {str(first), str(second)})
    await subscribe(socket, item=second, uid="a")  # the same uid again: replaced
    assert routed(consumer) == (False, {str(second)})
    await subscribe(socket, query={"fields": ["id"]}, uid="c")  # any row
    assert routed(consumer) == (True, set())

    await socket.send_json_to({"type": "unsubscribe", "uid": "c"})
    assert await next_frame(socket) == {"type": "subscription", "event": "unsubscribe", "uid": "c"}
    assert routed(consumer) == (False, {str(second)})
    with pytest.raises(TypeError):  # changed only by assigning: the routes follow every change
        consumer.subscriptions["x"] = consumer.subscriptions["a"]

    await socket.disconnect()
    assert routed(consumer) == (False, set())


async def test_a_listener_is_registered_before_the_join_and_a_discard_meanwhile_holds() -> None:
    """The join may wait (a round trip to the process channel's reading loop): an event handled meanwhile reaches
    the new listener, and one discarded meanwhile (its socket ended) is not registered afterwards for good."""
    from channels.layers import InMemoryChannelLayer

    from likha_realtime.events.fanout import Dispatcher
    from likha_realtime.node import ProcessChannel

    gate = asyncio.Event()

    class SlowJoin(ProcessChannel):
        async def join(self, group: str) -> None:
            await gate.wait()

    dispatcher = Dispatcher(SlowJoin(InMemoryChannelLayer()))
    listener = Listener(frozenset({"1"}))
    try:
        adding = asyncio.ensure_future(dispatcher.add("products", listener))  # type: ignore[arg-type]
        await wait_until_async(lambda: listener in dispatcher.listeners["products"], 5, "not registered")
        assert dispatcher.routes["products"].for_keys({"1"}) == [listener]
        dispatcher.discard("products", listener)  # type: ignore[arg-type]
        gate.set()
        await adding
        assert listener not in dispatcher.listeners["products"]
        assert dispatcher.routes["products"].for_keys({"1"}) == []
    finally:
        dispatcher.stop()
