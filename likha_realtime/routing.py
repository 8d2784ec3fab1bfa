"""The ASGI application: HTTP to Django, enabled sockets at their configured paths."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from likha_realtime.conf import socket_enabled, socket_path


def websocket_urlpatterns() -> list[Any]:
    from likha_realtime.consumers.rest import RestConsumer

    consumers = {"rest": RestConsumer}
    return [
        path(socket_path(name).lstrip("/"), consumer.as_asgi())
        for name, consumer in consumers.items()
        if socket_enabled(name)
    ]


def build_application(http_app: Any) -> ProtocolTypeRouter:
    return ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(websocket_urlpatterns())})
