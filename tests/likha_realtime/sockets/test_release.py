"""A connection is released however it ends: a ``disconnect()`` whose group leave fails on the channel layer (a
mass close exhausting the Redis pool) still takes the consumer out of the event dispatcher, and its groups are left
behind it (docs/RELIABILITY.md, "Connection churn")."""

from __future__ import annotations

import json
import logging

import pytest
from autobahn.exception import Disconnected
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.sockets.rest import RestConsumer
from realtime_auth import group_cleanup
from tests.likha_realtime.support import Roles
from tests.support import wait_until_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]

SUBSCRIBE = {"type": "subscribe", "collection": "products", "event": "update", "query": {"fields": ["id"]}, "uid": "s"}


async def test_a_failing_group_leave_on_close_still_releases_the_consumer(
    demo: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = {**settings.LIKHA_REALTIME, "REST_AUTH": "public", "HEARTBEAT_ENABLED": False}
    with override_settings(LIKHA_REALTIME=public):
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", "access_token": demo.admin})
        assert (await comm.receive_json_from(timeout=5))["status"] == "ok"
        await comm.send_to(text_data=json.dumps(SUBSCRIBE))
        assert json.loads(await comm.receive_from(timeout=5)) == {"type": "subscription", "event": "init", "uid": "s"}
        listeners = get_dispatcher().listeners["products"]
        assert len(listeners) == 1
        layer = get_channel_layer()
        discard = layer.group_discard
        failures = []

        async def exhausted(group: str, channel: str) -> None:
            if not failures:
                failures.append(channel)
                raise ConnectionError("Too many connections")
            await discard(group, channel)

        monkeypatch.setattr(layer, "group_discard", exhausted)
        monkeypatch.setattr(group_cleanup, "RETRY_SECONDS", (0.0,))
        await comm.disconnect(timeout=5)
        assert len(failures) == 1 and not listeners
        cleanup = group_cleanup.group_cleanup()
        await wait_until_async(lambda: cleanup._task is not None and cleanup._task.done())
        assert cleanup.abandoned == 0
        assert all(failures[0] not in members for members in layer.groups.values())  # it left every group


async def test_a_frame_racing_the_clients_close_is_dropped_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """A resync or event frame sent after the client has gone but before its disconnect reached the consumer: the
    transport refuses it (autobahn's ``Disconnected``); it is dropped quietly, like any frame after the close."""
    consumer = RestConsumer()
    sent: list[str] = []

    async def gone(text_data: str) -> None:
        sent.append(text_data)
        raise Disconnected("Attempt to send on a closed protocol")

    consumer.send = gone  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        await consumer.send_text('{"type":"subscription","event":"resync"}')
    assert sent == ['{"type":"subscription","event":"resync"}']
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []
