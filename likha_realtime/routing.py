"""The ASGI application: HTTP to Django, enabled sockets at their configured paths."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from likha_realtime.conf import socket_enabled, socket_path


def websocket_urlpatterns() -> list[Any]:
    from likha_realtime.graphql.schema import get_schema
    from likha_realtime.sockets.graphql import GraphQLConsumer
    from likha_realtime.sockets.logs import LogsConsumer
    from likha_realtime.sockets.rest import RestConsumer

    apps = {"rest": RestConsumer.as_asgi(), "logs": LogsConsumer.as_asgi()}
    schema = get_schema()
    if schema is not None:
        apps["graphql"] = GraphQLConsumer.as_asgi(schema=schema)
    return [path(socket_path(name).lstrip("/"), app) for name, app in apps.items() if socket_enabled(name)]


def build_application(http_app: Any) -> ProtocolTypeRouter:
    return ProtocolTypeRouter({"http": http_app, "websocket": URLRouter(websocket_urlpatterns())})
