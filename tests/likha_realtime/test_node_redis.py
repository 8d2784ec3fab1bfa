"""The process channel on a real Redis: read on an event loop of its own, in batches, with a layer instance of its
own, and handed to the server's loop in order (docs/RELIABILITY.md, "Soak": on the server's loop the process fell
behind its channel under load)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from channels.layers import channel_layers, get_channel_layer
from django.test import override_settings

from likha_realtime import node
from likha_realtime.layers import RedisChannelLayer
from likha_realtime.node import ProcessChannel
from tests.likha_realtime.test_layers import layer_config
from tests.live.harness import RedisServer
from tests.support import wait_until, wait_until_async

WAIT = 30.0  # a bound for a loaded machine, never a pace
EVENT = "likha.event"


@pytest.fixture
def config(redis_server: RedisServer) -> dict[str, Any]:
    return layer_config(redis_server)


@pytest.fixture
async def sender(config: dict[str, Any]) -> AsyncIterator[RedisChannelLayer]:
    """Another process's layer, publishing."""
    layer = RedisChannelLayer(**config)
    yield layer
    await layer.flush()


@pytest.fixture
async def channel(config: dict[str, Any]) -> AsyncIterator[ProcessChannel]:
    channel = ProcessChannel(RedisChannelLayer(**config), own_loop=True)
    yield channel
    channel.stop()


def channel_key(channel: ProcessChannel) -> str:
    """The Redis sorted set that holds what waits for ``channel``."""
    return str(channel.layer.prefix + channel.layer.non_local_name(channel.name))


async def test_messages_are_handled_on_the_servers_loop_in_order(
    channel: ProcessChannel, sender: RedisChannelLayer
) -> None:
    handled: list[tuple[int, int]] = []
    channel.on(EVENT, lambda message: handled.append((message["n"], threading.get_ident())))
    await channel.join("likha.events.products")
    await channel.join("likha.events.products")  # once: each message arrives once
    for n in range(300):
        await sender.group_send("likha.events.products", {"type": EVENT, "n": n})

    await wait_until_async(lambda: len(handled) >= 300, WAIT, "the messages were not handled")

    assert [n for n, _ in handled] == list(range(300))
    assert {thread for _, thread in handled} == {threading.get_ident()}  # the handlers' thread: this loop's


async def test_the_channel_is_drained_while_the_servers_loop_is_busy(
    channel: ProcessChannel, config: dict[str, Any], redis_server: RedisServer
) -> None:
    """A server loop that takes no turn for a while (a thousand sockets) does not leave the process's messages in
    Redis, where channels-redis refuses more once the channel holds its capacity ("over capacity": lost)."""
    handled: list[int] = []
    channel.on(EVENT, lambda message: handled.append(message["n"]))
    await channel.join("likha.events.products")
    key = channel_key(channel)
    client = redis.Redis.from_url(redis_server.url)
    drained = threading.Event()

    def publish_and_watch() -> None:  # another process: it publishes, then watches the channel's Redis set empty
        async def publish() -> None:
            sender = RedisChannelLayer(**config)
            for n in range(200):
                await sender.group_send("likha.events.products", {"type": EVENT, "n": n})

        asyncio.run(publish())
        wait_until(lambda: client.zcard(key) == 0, WAIT, "the process channel was not read while its loop was busy")
        drained.set()

    watcher = threading.Thread(target=publish_and_watch)
    watcher.start()
    drained.wait(WAIT)  # blocks this (the server's) loop on purpose: it takes no turn until Redis is drained
    watcher.join(WAIT)
    assert drained.is_set()

    await wait_until_async(lambda: len(handled) >= 200, WAIT, "the drained messages were not handled")
    assert handled == list(range(200))


async def test_a_batch_read_returns_what_waits_in_order_and_drops_other_channels(
    config: dict[str, Any], sender: RedisChannelLayer
) -> None:
    layer = RedisChannelLayer(**config)
    name, other = await layer.new_channel(), await layer.new_channel()
    for n in range(5):
        await sender.send(name, {"type": EVENT, "n": n})
    await sender.send(other, {"type": EVENT, "n": "other"})
    await sender.group_add("g", name)
    await sender.group_add("g", other)
    await sender.group_send("g", {"type": EVENT, "n": 5})

    assert await layer.receive_batch(name, 3) == [{"type": EVENT, "n": n} for n in range(3)]
    assert await layer.receive_batch(name) == [{"type": EVENT, "n": n} for n in (3, 4, 5)]
    assert layer.orphans_dropped == 1  # the other channel's message: its socket's reader is not this one
    await layer.flush()


def test_on_redis_the_process_channel_has_a_layer_instance_and_a_loop_of_its_own(config: dict[str, Any]) -> None:
    layers = {"default": {"BACKEND": "likha_realtime.layers.RedisChannelLayer", "CONFIG": config}}

    async def made() -> tuple[ProcessChannel, Any]:
        return node.process_channel(), get_channel_layer()

    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        try:
            channel, sockets_layer = asyncio.run(made())
        finally:
            channel_layers.backends.clear()
    assert channel.own_loop is True
    assert isinstance(channel.layer, RedisChannelLayer) and channel.layer is not sockets_layer
    assert channel.layer.client_prefix != sockets_layer.client_prefix  # its own Redis list: not the sockets'


class HeldJoins(RedisChannelLayer):
    """A Redis layer whose ``group_add`` waits until ``release`` is set (a thread event: the join runs on the
    process channel's reading loop)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.entered, self.release = threading.Event(), threading.Event()

    async def group_add(self, group: str, channel: str) -> None:
        self.entered.set()
        await asyncio.to_thread(self.release.wait, WAIT)
        await super().group_add(group, channel)


async def test_a_join_whose_caller_is_cancelled_still_joins(config: dict[str, Any], sender: RedisChannelLayer) -> None:
    """A socket that closes while its subscription joins the collection's group must not leave the group recorded
    as joined and never joined (the process would hear nothing of it until the hourly refresh)."""
    layer = HeldJoins(**config)
    channel = ProcessChannel(layer, own_loop=True)
    handled: list[int] = []
    channel.on(EVENT, lambda message: handled.append(message["n"]))
    try:
        first = asyncio.ensure_future(channel.join("likha.events.products"))
        await wait_until_async(layer.entered.is_set, WAIT, "the join did not start")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        layer.release.set()
        await channel.join("likha.events.products")  # another subscriber of the collection, later
        await sender.group_send("likha.events.products", {"type": EVENT, "n": 1})
        await wait_until_async(lambda: handled == [1], WAIT, "the group was never joined")
    finally:
        channel.stop()


async def test_undecodable_entries_are_skipped_not_the_batch(config: dict[str, Any], sender: RedisChannelLayer) -> None:
    layer = RedisChannelLayer(**config)
    name = await layer.new_channel()
    await sender.send(name, {"type": EVENT, "n": 1})
    key = layer.prefix + layer.non_local_name(name)
    client = redis.Redis.from_url(config["hosts"][0]["address"])
    client.zadd(key, {b"\xc1 not msgpack": 1e12})  # scored after the good one
    await sender.send(name, {"type": EVENT, "n": 2})
    client.zadd(key, {b"\xc1 not msgpack either": 0})  # before both

    assert await layer.receive_batch(name) == [{"type": EVENT, "n": 1}, {"type": EVENT, "n": 2}]
    assert layer.undecodable == 2
    await layer.flush()
