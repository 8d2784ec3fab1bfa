"""``GET /server/info``: the public shape for everyone, and this process's event counters for admins only."""

from __future__ import annotations

import pytest
from django.test import Client

from erp_demo.models import User
from likha_realtime.events.stats import stats
from likha_realtime.node import NODE_ID
from realtime_auth import tokens

pytestmark = pytest.mark.django_db

PUBLIC_SHAPE = {
    "rateLimit": {"points": 100, "duration": 1},
    "websocket": {
        "rest": {"authentication": "handshake", "path": "/websockets"},
        "graphql": {"authentication": "handshake", "path": "/graphql"},
        "logs": {"authentication": "handshake", "path": "/websockets/logs"},
        "heartbeat": 30,
        "limits": {
            "message_max_bytes": 1048576,
            "messages": {"points": 100, "duration": 1},
            "user_messages": {"points": 1000, "duration": 1},
            "connections_per_user": 1000,
            "subscriptions": 100,
            "items_ids": 1000,
        },
    },
}


def info(token: str | None = None) -> dict[str, object]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = Client().get("/server/info", **headers)
    assert response.status_code == 200
    return response.json()["data"]


def test_admins_also_get_this_processes_event_counters() -> None:
    admin = User.objects.create_superuser("root@example.com", "pw-123456789")
    stats.reset()
    stats.published, stats.lost = 3, 1
    data = info(tokens.issue_pair(admin).access)
    assert data == {
        **PUBLIC_SHAPE,
        "events": {
            "node": NODE_ID,
            "published": 3,
            "publish_failures": 0,
            "publish_deferred": 0,
            "publish_dropped": 0,
            "received": 0,
            "lost": 1,
            "queue_dropped": 0,
            "deliveries_dropped": 0,
            "committed_reads": 0,
            "rereads": 0,
            "fast_lane_deliveries": 0,
            "frames_sent": 0,
            "delivery_errors": 0,
            "slow_readers_closed": 0,
            "receive_failures": 0,
            "resyncs": 0,
        },
    }
    stats.reset()


@pytest.mark.parametrize("who", ["nobody", "user", "bad token", "inactive admin"])
def test_everyone_else_gets_the_public_shape_only(who: str) -> None:
    admin = User.objects.create_superuser("root@example.com", "pw-123456789")
    token = {
        "nobody": None,
        "user": lambda: tokens.issue_pair(User.objects.create_user("u@example.com", "pw-123456789")).access,
        "bad token": lambda: "not-a-jwt",
        "inactive admin": lambda: tokens.issue_pair(admin).access,
    }[who]
    raw = token() if callable(token) else token
    if who == "inactive admin":
        User.objects.filter(pk=admin.pk).update(is_active=False)
    assert info(raw) == PUBLIC_SHAPE


def test_the_limits_follow_the_settings_and_unlimited_is_false() -> None:
    from tests.likha_realtime.support import realtime

    with realtime(MESSAGE_RATE_POINTS=None, USER_MESSAGE_RATE_POINTS=50, MESSAGE_RATE_DURATION=2, USER_CONN_LIMIT=None):
        data = info()
    assert data["rateLimit"] is False
    assert data["websocket"]["limits"] == {  # type: ignore[index]
        "message_max_bytes": 1048576,
        "messages": False,
        "user_messages": {"points": 50, "duration": 2},
        "connections_per_user": None,
        "subscriptions": 100,
        "items_ids": 1000,
    }
