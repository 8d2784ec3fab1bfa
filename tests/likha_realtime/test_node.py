"""The process channel: one channel per event loop, joined to groups once, routing each message by type."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

from likha_realtime import node
from likha_realtime.node import ProcessChannel, crosses_processes, process_channel
from tests.likha_realtime.support import realtime
from tests.support import wait_until_async


class CountingLayer(InMemoryChannelLayer):
    """The in-memory layer, counting the channels it made and the group memberships it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.channels_made = 0
        self.adds: list[tuple[str, str]] = []

    async def new_channel(self, prefix: str = "specific.") -> str:
        self.channels_made += 1
        return await super().new_channel(prefix)

    async def group_add(self, group: str, channel: str) -> None:
        self.adds.append((group, channel))
        await super().group_add(group, channel)


class Inbox:
    """A handler that keeps what it was given; ``next()`` waits for the next message (bounded)."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.put_nowait(message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), timeout=5)


@pytest.fixture
def layer() -> CountingLayer:
    return CountingLayer()


@pytest.fixture
async def channel(layer: CountingLayer) -> AsyncIterator[ProcessChannel]:
    channel = ProcessChannel(layer)
    yield channel
    channel.stop()


async def test_messages_are_routed_by_type_to_their_handler(layer: CountingLayer, channel: ProcessChannel) -> None:
    events, logs = Inbox(), Inbox()
    channel.on("realtime.event", events)
    channel.on("logs.lines", logs)
    await channel.join("likha.products")

    await layer.group_send("likha.products", {"type": "logs.lines", "lines": [[30, "x"]]})
    await layer.group_send("likha.products", {"type": "realtime.event", "seq": 1})
    await layer.group_send("likha.products", {"type": "realtime.event", "seq": 2})

    assert await events.next() == {"type": "realtime.event", "seq": 1}
    assert await events.next() == {"type": "realtime.event", "seq": 2}
    assert await logs.next() == {"type": "logs.lines", "lines": [[30, "x"]]}
    assert events.messages.empty() and logs.messages.empty()


async def test_a_message_of_no_known_type_is_skipped_and_routing_goes_on(
    layer: CountingLayer, channel: ProcessChannel
) -> None:
    events = Inbox()
    channel.on("realtime.event", events)
    await channel.join("likha.products")

    await layer.group_send("likha.products", {"type": "somebody.else", "n": 1})
    await layer.group_send("likha.products", {"type": "realtime.event", "n": 2})

    assert await events.next() == {"type": "realtime.event", "n": 2}


async def test_the_channel_is_made_once_and_each_group_joined_once(
    layer: CountingLayer, channel: ProcessChannel
) -> None:
    assert channel.name is None  # nothing is asked of the layer before the first join
    await asyncio.gather(*(channel.join(group) for group in ("a", "b", "a", "b", "a")))
    await channel.join("a")

    assert layer.channels_made == 1
    assert sorted(layer.adds) == [("a", channel.name), ("b", channel.name)]
    assert channel.groups == {"a", "b"}


async def test_a_group_joined_twice_delivers_each_message_once(layer: CountingLayer, channel: ProcessChannel) -> None:
    events = Inbox()
    channel.on("realtime.event", events)
    await channel.join("a")
    await channel.join("a")

    await layer.group_send("a", {"type": "realtime.event", "n": 1})
    await layer.group_send("a", {"type": "realtime.event", "n": 2})

    assert [await events.next(), await events.next()] == [
        {"type": "realtime.event", "n": 1},
        {"type": "realtime.event", "n": 2},
    ]
    assert events.messages.empty()


async def test_messages_of_every_joined_group_and_to_the_channel_itself_arrive(
    layer: CountingLayer, channel: ProcessChannel
) -> None:
    events = Inbox()
    channel.on("realtime.event", events)
    await channel.join("a")
    await channel.join("b")
    assert channel.name is not None

    await layer.group_send("b", {"type": "realtime.event", "from": "b"})
    await layer.send(channel.name, {"type": "realtime.event", "from": "direct"})
    await layer.group_send("a", {"type": "realtime.event", "from": "a"})

    assert [(await events.next())["from"] for _ in range(3)] == ["b", "direct", "a"]


async def test_a_handler_registered_later_replaces_the_earlier_one(
    layer: CountingLayer, channel: ProcessChannel
) -> None:
    first, second = Inbox(), Inbox()
    channel.on("realtime.event", first)
    channel.on("realtime.event", second)
    await channel.join("a")

    await layer.group_send("a", {"type": "realtime.event"})

    assert await second.next() == {"type": "realtime.event"}
    assert first.messages.empty()


class OutageLayer(CountingLayer):
    """The in-memory layer with Redis' failures: ``fail()`` breaks the pending receive and every call until
    ``restart()``, which also forgets every group (a Redis without persistence)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.outage: asyncio.Event | None = None

    def _refused(self) -> RedisConnectionError:
        return RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async def receive(self, channel: str) -> dict[str, Any]:
        if self.down:
            raise self._refused()
        self.outage = self.outage or asyncio.Event()
        get = asyncio.ensure_future(super().receive(channel))
        broken = asyncio.ensure_future(self.outage.wait())
        done, pending = await asyncio.wait({get, broken}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if get in done:
            return get.result()
        raise RedisConnectionError("Connection closed by server.")

    async def group_add(self, group: str, channel: str) -> None:
        if self.down:
            raise self._refused()
        await super().group_add(group, channel)

    def fail(self) -> None:
        self.down = True
        if self.outage is not None:
            self.outage.set()

    def restart(self) -> None:
        self.groups.clear()
        self.down, self.outage = False, None


async def test_after_an_outage_the_channel_rejoins_its_groups_and_recovers_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = OutageLayer()
    channel = ProcessChannel(layer)
    events, recoveries = Inbox(), []
    channel.on("realtime.event", events)
    channel.on_recovered(lambda: recoveries.append(len(layer.groups)))
    try:
        with (
            realtime(CHANNEL_LAYER_RETRY=0.01, CHANNEL_LAYER_FAULT_LOG_INTERVAL=3600),
            caplog.at_level(logging.INFO, logger="likha_realtime.node"),
        ):
            await channel.join("a")
            await channel.join("b")
            layer.fail()
            await wait_until_async(lambda: channel.failures >= 5, message="the channel did not retry")
            await channel.join("c")  # a subscription while Redis is down: no error, joined on recovery
            assert recoveries == []
            layer.restart()  # Redis is back, and has forgotten every group
            await wait_until_async(lambda: recoveries, message="the channel did not recover")
            await layer.group_send("c", {"type": "realtime.event", "n": 1})
            await layer.group_send("a", {"type": "realtime.event", "n": 2})
            assert [await events.next(), await events.next()] == [
                {"type": "realtime.event", "n": 1},
                {"type": "realtime.event", "n": 2},
            ]
    finally:
        channel.stop()
    assert recoveries == [3]  # once, after all three groups were joined again
    assert set(layer.groups) == {"a", "b", "c"}
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages[0] == (
        "WARNING",
        "process channel: the channel layer failed (ConnectionError: Connection closed by server.); retrying every "
        "0.01s",
    )
    assert messages[1][0] == "WARNING" and messages[1][1].startswith(
        "process channel: the channel layer answers again after "
    )
    assert messages[1][1].endswith("failure(s)); re-joined 3 group(s)")
    assert len(messages) == 2  # one line when it failed, one when it recovered: none per retry, no traceback
    assert all(r.exc_info is None for r in caplog.records)


async def test_each_failure_is_reported_to_the_failure_callbacks() -> None:
    layer = OutageLayer()
    channel = ProcessChannel(layer)
    failures: list[int] = []
    channel.on_failed(lambda: failures.append(channel.failures))
    try:
        with realtime(CHANNEL_LAYER_RETRY=0.01):
            await channel.join("a")
            layer.fail()
            await wait_until_async(lambda: len(failures) >= 3, message="no failures reported")
    finally:
        channel.stop()
    assert failures[:3] == [1, 2, 3]


async def test_the_groups_are_joined_again_every_refresh_period(
    monkeypatch: pytest.MonkeyPatch, layer: CountingLayer
) -> None:
    monkeypatch.setattr(node, "GROUP_REFRESH_SECONDS", 0.01)
    channel = ProcessChannel(layer)
    try:
        await channel.join("a")
        await channel.join("b")
        # The layer forgets members after its group expiry: the channel must add itself again, to every group.
        await wait_until_async(lambda: len(layer.adds) >= 6, message="the groups were not refreshed")
    finally:
        channel.stop()
    assert {group for group, _ in layer.adds} == {"a", "b"}
    assert {name for _, name in layer.adds} == {channel.name}


async def test_stop_ends_the_channel_tasks(layer: CountingLayer) -> None:
    channel = ProcessChannel(layer)
    await channel.join("a")
    tasks = list(channel._tasks)  # (its receive and refresh tasks: a private name, only read)
    assert len(tasks) == 2 and not any(task.done() for task in tasks)

    channel.stop()

    await asyncio.wait(tasks, timeout=5)
    assert all(task.cancelled() for task in tasks)


async def test_the_process_channel_is_one_per_event_loop_on_the_configured_layer() -> None:
    channel = process_channel()
    assert process_channel() is channel
    assert channel.layer is get_channel_layer()
    assert channel.crosses_processes is False  # the test settings' in-memory layer is this process only


def test_each_event_loop_has_its_own_process_channel() -> None:
    async def one() -> ProcessChannel:
        return process_channel()

    assert asyncio.run(one()) is not asyncio.run(one())


@pytest.mark.parametrize(("layer", "crosses"), [(None, False), (InMemoryChannelLayer(), False), (object(), True)])
def test_only_a_layer_other_than_the_in_memory_one_crosses_processes(layer: Any, crosses: bool) -> None:
    assert crosses_processes(layer) is crosses
    assert ProcessChannel(layer).crosses_processes is crosses


async def test_a_handler_that_fails_on_one_message_does_not_stop_the_channel(
    layer: CountingLayer, channel: ProcessChannel, caplog: pytest.LogCaptureFixture
) -> None:
    events = Inbox()

    def picky(message: dict[str, Any]) -> None:
        int(message["seq"])  # a malformed message (seq: None) raises here
        events(message)

    channel.on("realtime.event", picky)
    await channel.join("likha.products")
    with caplog.at_level(logging.ERROR, logger="likha_realtime.node"):
        await layer.group_send("likha.products", {"type": "realtime.event", "seq": None})
        await layer.group_send("likha.products", {"type": "realtime.event", "seq": 2})
        assert await events.next() == {"type": "realtime.event", "seq": 2}
    assert "the handler of a 'realtime.event' message failed" in caplog.text
