"""Fixtures of the realtime_auth tests: users, and the process's in-memory channel layer seen from synchronous code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from erp_demo.models import User

EDITOR_EMAIL, EDITOR_PASSWORD = "editor@example.com", "editor-password"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password"


@pytest.fixture
def editor() -> User:
    return User.objects.create_user(EDITOR_EMAIL, EDITOR_PASSWORD)


@pytest.fixture
def admin() -> User:
    return User.objects.create_superuser(ADMIN_EMAIL, ADMIN_PASSWORD)


class Listener:
    """Channels of the in-memory layer joined to groups, read from synchronous test code.

    Broadcasts are ``group_send`` calls that have returned by the time the code under test returns, so reading
    what a channel holds waits only for messages already queued (``wait`` bounds the read of an empty channel).
    """

    def __init__(self, layer: InMemoryChannelLayer, wait: float = 0.05) -> None:
        self.layer = layer
        self.wait = wait

    def join(self, *groups: str) -> str:
        channel: str = async_to_sync(self.layer.new_channel)()
        for group in groups:
            async_to_sync(self.layer.group_add)(group, channel)
        return channel

    def received(self, channel: str) -> list[dict[str, Any]]:
        """Every message queued on ``channel`` so far, oldest first (and the channel is then empty)."""
        return async_to_sync(self._drain)(channel)

    async def _drain(self, channel: str) -> list[dict[str, Any]]:
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(self.layer.receive(channel), self.wait))
            except TimeoutError:
                return messages


@pytest.fixture
def layer() -> Iterator[InMemoryChannelLayer]:
    """The process's channel layer, emptied before and after the test (other tests ran on other event loops)."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer), "settings.test configures the in-memory channel layer"
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()


@pytest.fixture
def listener(layer: InMemoryChannelLayer) -> Listener:
    return Listener(layer)
