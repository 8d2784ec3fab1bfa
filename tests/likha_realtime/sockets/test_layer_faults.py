"""A socket's own channel-layer channel outlives layer failures (``RealtimeSocket._serve``, ``node.receive_surviving``):
no 1011 close, the socket keeps answering, and once the layer answers its groups are joined again and its identity
re-read (revocations sent meanwhile may be lost)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import channels
import pytest
from channels.consumer import AsyncConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.test import override_settings
from redis.exceptions import ConnectionError as RedisConnectionError

from likha_realtime.node import socket_channel_faults
from likha_realtime.sockets.rest import RestConsumer
from tests.likha_realtime.graphql.support import pair_for
from tests.likha_realtime.support import FRAME_WAIT, open_socket, realtime
from tests.support import wait_until_async

pytestmark = pytest.mark.django_db(transaction=True)


class BrokenLayer(InMemoryChannelLayer):
    """The in-memory layer while Redis is unreachable (``down``): receives and group calls fail like redis-py."""

    down = False
    adds: list[str] = []  # one layer per test (settings reset)

    async def receive(self, channel: str) -> dict[str, Any]:
        while BrokenLayer.down is False:
            try:
                return await asyncio.wait_for(super().receive(channel), 0.05)
            except TimeoutError:
                continue
        raise RedisConnectionError("Connection closed by server.")

    async def group_add(self, group: str, channel: str) -> None:
        if BrokenLayer.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        BrokenLayer.adds.append(group)
        await super().group_add(group, channel)


LAYERS = {"default": {"BACKEND": f"{__name__}.BrokenLayer"}}


def test_serve_follows_the_channels_consumer_it_replaces() -> None:
    """``RealtimeSocket._serve`` is channels 4.3.2's ``AsyncConsumer.__call__`` with another channel receive."""
    assert channels.__version__ == "4.3.2"
    source = inspect.getsource(AsyncConsumer.__call__)
    for line in (
        "self.channel_layer = get_channel_layer(self.channel_layer_alias)",
        "self.channel_name = await self.channel_layer.new_channel()",
        "await await_many_dispatch(",
        "except StopConsumer:",
    ):
        assert line in source


async def test_a_failing_layer_leaves_the_socket_open_and_it_rejoins_and_reloads_when_back(
    seeded: dict[str, int], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    reloads: list[dict[str, Any]] = []
    original = RestConsumer.auth_reload

    async def recording_reload(self: RestConsumer, message: dict[str, Any]) -> None:
        reloads.append(dict(message))
        await original(self, message)

    monkeypatch.setattr(RestConsumer, "auth_reload", recording_reload)
    BrokenLayer.down, BrokenLayer.adds = False, []
    pair = await pair_for("editor@example.com")
    with (
        override_settings(CHANNEL_LAYERS=LAYERS),
        caplog.at_level(logging.INFO, logger="likha_realtime.node"),
    ):
        assert isinstance(get_channel_layer(), BrokenLayer)
        with realtime(CHANNEL_LAYER_RETRY=0.05):
            comm = await open_socket(f"/websockets?access_token={pair.access}")
            try:
                joined = list(BrokenLayer.adds)
                assert any(group.startswith("likha.auth.user.") for group in joined), joined
                BrokenLayer.down = True
                await wait_until_async(lambda: socket_channel_faults.failing, message="the receive never failed")
                await comm.send_json_to({"type": "ping", "uid": 1})
                assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "pong", "uid": 1}
                BrokenLayer.down = False
                await wait_until_async(lambda: reloads, message="no re-read after the layer came back")
                await comm.send_json_to({"type": "ping", "uid": 2})
                assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "pong", "uid": 2}
            finally:
                await comm.disconnect()
    assert reloads[0]["type"] == "auth.reload" and reloads[0]["group"].startswith("likha.auth.")
    assert sorted(set(BrokenLayer.adds[len(joined) :])) == sorted(set(joined))  # every group joined again
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("socket channels:")]
    assert messages[0] == (
        "socket channels: the channel layer failed (ConnectionError: Connection closed by server.); sockets stay "
        "open, retrying every 0.05s"
    )
    assert messages[1].startswith("socket channels: the channel layer answers again after ")
    assert len(messages) == 2
