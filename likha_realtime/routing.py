"""The ASGI application: HTTP to Django with the request log, the enabled sockets at their configured paths.

A host project mounts it in one of two ways (docs/CONFIGURATION.md, "Mounting"):

- its whole ASGI application is ``build_application(get_asgi_application())``;
- or, with a ``ProtocolTypeRouter`` of its own, ``"http": request_log(django_asgi_app)`` and
  ``"websocket": websocket_application()`` — ``websocket_application(its_routes)`` with WebSocket routes of its own,
  which then get the same guards as the sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from likha_realtime import origins
from likha_realtime.checks import CHANNEL_LAYER_HINT, channel_layer_problem
from likha_realtime.conf import socket_enabled, socket_path
from likha_realtime.logs.requests import request_log

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

# PROTOCOL §4: the sockets cannot work on this server (no channel layer). graphql-ws clients do not retry 4500.
# (Kept here until realtime_auth.wire.CloseCode, the list of close codes, takes it.)
SERVER_MISCONFIGURED = 4500
SERVER_MISCONFIGURED_REASON = "Server Misconfigured"


def websocket_urlpatterns() -> list[Any]:
    """The enabled sockets' routes, unguarded: mount them through ``websocket_application``, which adds the origin
    and Host checks, the channel-layer guard and the clean refusal of unknown paths."""
    from likha_realtime.graphql.schema import get_schema
    from likha_realtime.sockets.graphql import GraphQLConsumer
    from likha_realtime.sockets.logs import LogsConsumer
    from likha_realtime.sockets.rest import RestConsumer

    apps = {"rest": RestConsumer.as_asgi(), "logs": LogsConsumer.as_asgi()}
    schema = get_schema()
    if schema is not None:
        apps["graphql"] = GraphQLConsumer.as_asgi(schema=schema)
    return [path(socket_path(name).lstrip("/"), app) for name, app in apps.items() if socket_enabled(name)]


class ChannelLayerRequired:
    """``app`` (the sockets) when there is a channel layer; without one (``CHANNEL_LAYERS`` missing or broken, e.g. a
    host serving with plain daphne, which runs no system checks), every socket is accepted and closed 4500 "Server
    Misconfigured" instead of failing inside a consumer (close 1011), and one ERROR naming the fix is logged."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reported = False

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        problem = channel_layer_problem() if scope.get("type") == "websocket" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        if not self.reported:
            self.reported = True
            logger.error("WebSocket refused (close %d): %s %s", SERVER_MISCONFIGURED, problem, CHANNEL_LAYER_HINT)
        message = await receive()
        if message.get("type") != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": SERVER_MISCONFIGURED, "reason": SERVER_MISCONFIGURED_REASON})


def channel_layer_required(app: Any) -> ChannelLayerRequired:
    return ChannelLayerRequired(app)


class Unrouted:
    """A handshake to a path where no socket is (``/nope``, ``/websockets/``, a disabled socket) is refused like a
    refused origin — HTTP 403 before accept, one INFO line with the path escaped — not an HTTP 500 with channels'
    "No route found" traceback that any client could fill the log with."""

    def __init__(self, router: URLRouter) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        try:
            await self.router(scope, receive, send)
        except ValueError as exc:  # channels' URLRouter: ValueError("No route found for path ...")
            if not str(exc).startswith("No route found for path"):
                raise
            path = str(scope.get("path", "")).encode("unicode_escape").decode("ascii")
            logger.info("WebSocket handshake to %s refused (HTTP 403): no socket at this path", path)
            await origins.refuse(receive, send)


def websocket_application(routes: Sequence[Any] = ()) -> Any:
    """The ``"websocket"`` entry of a ``ProtocolTypeRouter``: the enabled sockets and the host's own WebSocket
    ``routes`` (``django.urls.path`` entries, matched first), all behind the origin and Host checks
    (``origins.guard``) and the channel-layer guard, a path that neither has refused with HTTP 403 (``Unrouted``)."""
    return origins.guard(channel_layer_required(Unrouted(URLRouter([*routes, *websocket_urlpatterns()]))))


def build_application(http_app: Any) -> ProtocolTypeRouter:
    """The whole ASGI application: ``http_app`` (Django's) with request logging, and the sockets."""
    return ProtocolTypeRouter({"http": request_log(http_app), "websocket": websocket_application()})
