"""An event frame read under rights the connection no longer has is never sent: frames go out only while the
plan they were read under is still the connection's (a login, failed re-auth or rights change replaces it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from erp_demo.models import User
from likha_realtime.events import deliver as deliver_module
from likha_realtime.sockets.rest import RestConsumer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

ADMIN = {"email": "admin@example.com", "password": "admin-password"}
EDITOR = {"email": "editor@example.com", "password": "editor-password"}


def touch(pk: int) -> None:
    from erp_demo.models import Customer

    customer = Customer.objects.get(pk=pk)
    customer.credit_limit += 1
    customer.save()


def demote() -> None:
    admin = User.objects.get(email=ADMIN["email"])
    admin.is_superuser = False
    admin.save()


async def next_frames(comm: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    return [json.loads((await comm.receive_output(timeout=3))["text"]) for _ in range(count)]


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ("editor", [("auth", "ok")]),
        ("bad credentials", [("auth", "error")]),
        ("demotion", [("subscribe", "error")]),
    ],
)
async def test_a_frame_read_under_the_old_rights_is_dropped(
    seeded: dict[str, int], monkeypatch: pytest.MonkeyPatch, switch: str, expected: list[tuple[str, str]]
) -> None:
    read, release = asyncio.Event(), asyncio.Event()
    real = deliver_module.SharedRead._read

    async def slow_read(self: Any) -> Any:
        payload = await real(self)  # read under the admin's plan (from the committed row, or re-read)
        read.set()
        await asyncio.wait_for(release.wait(), 5)  # a slow read: the connection's rights change meanwhile
        return payload

    monkeypatch.setattr(deliver_module.SharedRead, "_read", slow_read)
    monkeypatch.setattr(deliver_module.SharedRead, "now", lambda self: deliver_module.NOT_YET)  # no fast lane
    with override_settings(
        LIKHA_REALTIME={**settings.LIKHA_REALTIME, "REST_AUTH": "public", "HEARTBEAT_ENABLED": False}
    ):
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", **ADMIN})
        assert (await comm.receive_json_from(timeout=3))["status"] == "ok"
        await comm.send_json_to({"type": "subscribe", "collection": "customers", "event": "update", "uid": "c"})
        assert await comm.receive_json_from(timeout=3) == {"type": "subscription", "event": "init", "uid": "c"}
        await database_sync_to_async(touch)(seeded["customer"])
        await asyncio.wait_for(read.wait(), 5)
        if switch == "editor":
            await comm.send_json_to({"type": "auth", **EDITOR})
        elif switch == "bad credentials":
            await comm.send_json_to({"type": "auth", "email": ADMIN["email"], "password": "wrong"})
        else:
            await database_sync_to_async(demote)()
        frames = await next_frames(comm, len(expected))
        assert [(frame["type"], frame["status"]) for frame in frames] == expected
        release.set()
        await comm.send_json_to({"type": "ping", "uid": "p"})
        # The frame read for the admin (with credit_limit) never arrives: the next frame is the pong.
        assert await comm.receive_json_from(timeout=3) == {"type": "pong", "uid": "p"}
        await comm.disconnect()
