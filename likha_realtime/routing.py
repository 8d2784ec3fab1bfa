"""The ASGI application: HTTP to Django, enabled sockets at their configured paths (docs/EMBEDDING.md).

A host project either uses ``build_application(get_asgi_application())`` as its whole ASGI application, or, when it
has its own ``ProtocolTypeRouter``, mounts ``websocket_application()`` under ``"websocket"`` and wraps its HTTP app in
``likha_realtime.logs.requests.request_log``.
"""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from likha_realtime import origins
from likha_realtime.conf import socket_enabled, socket_path
from likha_realtime.logs.requests import request_log


def websocket_urlpatterns() -> list[Any]:
    """The enabled sockets' routes, unguarded: mount them only behind ``origins.guard`` (``websocket_application``)."""
    from likha_realtime.graphql.schema import get_schema
    from likha_realtime.sockets.graphql import GraphQLConsumer
    from likha_realtime.sockets.logs import LogsConsumer
    from likha_realtime.sockets.rest import RestConsumer

    apps = {"rest": RestConsumer.as_asgi(), "logs": LogsConsumer.as_asgi()}
    schema = get_schema()
    if schema is not None:
        apps["graphql"] = GraphQLConsumer.as_asgi(schema=schema)
    return [path(socket_path(name).lstrip("/"), app) for name, app in apps.items() if socket_enabled(name)]


def websocket_application() -> Any:
    """The three sockets behind the origin and Host checks: the ``"websocket"`` entry of a ``ProtocolTypeRouter``."""
    return origins.guard(URLRouter(websocket_urlpatterns()))


def build_application(http_app: Any) -> ProtocolTypeRouter:
    """The whole ASGI application: ``http_app`` (Django's) with request logging, and the sockets."""
    return ProtocolTypeRouter({"http": request_log(http_app), "websocket": websocket_application()})
