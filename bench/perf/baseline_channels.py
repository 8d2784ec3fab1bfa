"""Baseline (a) of ``make bench``: a bare Channels consumer on daphne relaying a group message, with no auth, rights
or re-read. Run as ``daphne bench.perf.baseline_channels:application`` (REDIS_URL, REDIS_PREFIX from the
environment). Each socket answers a ``subscribe`` with an empty ``init`` and joins one group; a ``PATCH`` (any path)
with ``{"stock": n}`` sends the REST socket's update frame for product 1 with that stock to the group, so the same
load generator and writer measure it as they measure Likha."""

from __future__ import annotations

import json
import os
from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
                    "prefix": os.environ.get("REDIS_PREFIX", "baseline") + ":asgi",
                    "capacity": 100_000,
                },
            }
        }
    )
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.routing import ProtocolTypeRouter

GROUP = "bench"
INIT = json.dumps({"type": "subscription", "event": "init", "data": [], "uid": "b"})


class Relay(AsyncWebsocketConsumer):
    groups = [GROUP]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data and json.loads(text_data).get("type") == "subscribe":
            await self.send(text_data=INIT)

    async def relay(self, message: dict[str, Any]) -> None:
        await self.send(text_data=message["text"])


async def write(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    stock = json.loads(body or b"{}").get("stock", 0)
    frame = {"type": "subscription", "event": "update", "data": [{"id": 1, "stock": stock}], "uid": "b"}
    await get_channel_layer().group_send(GROUP, {"type": "relay", "text": json.dumps(frame)})
    reply = json.dumps({"data": {"id": 1, "stock": stock}}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": reply})


application = ProtocolTypeRouter({"http": write, "websocket": Relay.as_asgi()})
