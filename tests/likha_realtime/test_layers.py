"""``likha_realtime.layers.RedisChannelLayer`` on a real Redis: a receive cancelled while it reads Redis for the
whole process (a socket closing) loses no other channel's message; channels-redis' own layer does (the contract
test below fails once it no longer does: the subclass can then go)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer as UpstreamRedisChannelLayer

from likha_realtime.layers import RedisChannelLayer
from tests.live.harness import RedisServer
from tests.support import wait_until_async

WAIT = 30.0  # a bound for a loaded machine, never a pace


class HeldBackup:
    """Redis connections whose ``ZADD`` (the backup copy after ``BZPOPMIN`` has popped a message) waits for
    ``release``: the moment in which a cancelled receive loses what it popped."""

    def __init__(self, layer: Any) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        connection = layer.connection

        def held(index: int) -> Any:
            return _Held(connection(index), self)

        layer.connection = held
        self.backup_suffix = layer._backup_channel_name("")

    def backup(self, key: Any) -> bool:
        name = key.decode() if isinstance(key, bytes) else str(key)
        return name.endswith(self.backup_suffix)


class _Held:
    def __init__(self, inner: Any, hold: HeldBackup) -> None:
        self._inner = inner
        self._hold = hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def zadd(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        if self._hold.backup(key):  # not a send's ZADD: the copy of what a receive popped
            self._hold.entered.set()
            await self._hold.release.wait()
        return await self._inner.zadd(key, *args, **kwargs)


def layer_config(redis_server: RedisServer) -> dict[str, Any]:
    """As settings.base configures it: a read timeout above channels-redis' 5 s BZPOPMIN (redis/redis-py#4091)."""
    hosts = [{"address": redis_server.url, "socket_timeout": 15}]
    return {"hosts": hosts, "prefix": f"test-layers-{uuid.uuid4().hex}"}


def reading_for_all(layer: Any) -> bool:
    """A receive holds the layer's receive lock: it reads Redis for every channel of the process."""
    return layer.receive_lock is not None and layer.receive_lock.locked()


@pytest.fixture(params=[RedisChannelLayer, UpstreamRedisChannelLayer], ids=["ours", "upstream"])
async def layer(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Any]:
    layer = request.param(**layer_config(redis_server))
    yield layer
    await layer.flush()


async def test_a_cancelled_receive_hands_the_message_it_popped_to_its_channel(layer: Any) -> None:
    closing, process = await layer.new_channel(), await layer.new_channel()
    hold = HeldBackup(layer)
    closing_receive = asyncio.ensure_future(layer.receive(closing))
    await wait_until_async(lambda: reading_for_all(layer), WAIT)
    process_receive = asyncio.ensure_future(layer.receive(process))

    await layer.send(process, {"type": "event", "n": 1})
    await asyncio.wait_for(hold.entered.wait(), WAIT)  # popped by the closing socket's receive, not backed up yet
    closing_receive.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing_receive
    hold.release.set()

    if isinstance(layer, RedisChannelLayer):
        # The process channel's receive now reads for everyone (waiting for the cancelled read to finish): the
        # message handed over to it ends its wait by itself, no later message needed.
        assert await asyncio.wait_for(process_receive, WAIT) == {"type": "event", "n": 1}
        await layer.send(process, {"type": "event", "n": 2})
        assert await asyncio.wait_for(layer.receive(process), WAIT) == {"type": "event", "n": 2}
    else:  # channels-redis 4.3.0 loses it: the process channel's next message is the second
        await layer.send(process, {"type": "event", "n": 2})
        assert await asyncio.wait_for(process_receive, WAIT) == {"type": "event", "n": 2}
    await layer.wait_received()


async def test_forget_drops_the_buffer_and_a_late_handover(redis_server: RedisServer) -> None:
    layer = RedisChannelLayer(**layer_config(redis_server))
    try:
        closing = await layer.new_channel()
        hold = HeldBackup(layer)
        closing_receive = asyncio.ensure_future(layer.receive(closing))
        await wait_until_async(lambda: reading_for_all(layer), WAIT)
        await layer.send(closing, {"type": "revoked"})
        await asyncio.wait_for(hold.entered.wait(), WAIT)
        closing_receive.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing_receive
        layer.forget(closing)
        hold.release.set()
        await wait_until_async(lambda: layer.orphans_dropped > 0, WAIT)  # the read finishes on its own task
        assert layer.orphans_dropped == 1
        assert closing not in layer.receive_buffer
    finally:
        await layer.flush()


def count_single_commands(connection: Any) -> tuple[list[Any], Any]:
    """The commands ``connection`` sends one at a time from now on (each a round trip; a pipeline sends its own),
    and its own ``execute_command`` to ask Redis without counting."""
    commands: list[Any] = []
    real = connection.execute_command

    async def counted(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return await real(*args, **kwargs)

    connection.execute_command = counted
    return commands, real


async def test_many_groups_are_joined_and_left_in_one_round_trip(redis_server: RedisServer) -> None:
    """``group_add_many`` / ``group_discard_many``: what ``group_add`` / ``group_discard`` do for each group, in one
    pipeline (a login's user and session groups; a closing socket leaves both)."""
    layer = RedisChannelLayer(**layer_config(redis_server), group_expiry=600)
    try:
        channel = await layer.new_channel()
        commands, real = count_single_commands(layer.connection(0))
        await layer.group_add_many(["user.1", "session.a"], channel)
        assert commands == []
        for group in ("user.1", "session.a"):
            assert await real("ZSCORE", layer._group_key(group), channel) is not None
            assert 590 <= await real("TTL", layer._group_key(group)) <= 600
        await layer.group_send("session.a", {"type": "hello"})
        assert await asyncio.wait_for(layer.receive(channel), WAIT) == {"type": "hello"}
        commands.clear()  # the send and the receive took their own

        await layer.group_discard_many(["user.1", "session.a"], channel)
        assert commands == []
        for group in ("user.1", "session.a"):
            assert await real("ZSCORE", layer._group_key(group), channel) is None
    finally:
        await layer.flush()


async def test_group_add_joins_and_sets_the_groups_expiry_in_one_round_trip(redis_server: RedisServer) -> None:
    """As channels-redis' own ``group_add`` (the member's score, the group's expiry), pipelined: one round trip."""
    layer = RedisChannelLayer(**layer_config(redis_server), group_expiry=600)
    try:
        channel = await layer.new_channel()
        commands, real = count_single_commands(layer.connection(layer.consistent_hash("g")))
        await layer.group_add("g", channel)

        assert commands == []
        key = layer._group_key("g")
        assert await real("ZSCORE", key, channel) is not None
        assert 590 <= await real("TTL", key) <= 600
        await layer.group_send("g", {"type": "hello"})
        assert await asyncio.wait_for(layer.receive(channel), WAIT) == {"type": "hello"}
    finally:
        await layer.flush()
