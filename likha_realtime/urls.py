"""Every HTTP route of both apps (PROTOCOL §9): ``auth/`` (realtime_auth.urls), ``items/``, ``server/info``,
``healthz``, ``readyz``, ``metrics`` and POST on the GraphQL socket's path — one include for a host:
``path("", include("likha_realtime.urls"))``.

Under a prefix (``path("realtime/", include(...))``) every one of these routes moves under it, the GraphQL one to
``<prefix><GRAPHQL_PATH>``; the sockets do not (the ASGI router serves them at their ``*_PATH`` settings, which
``/server/info`` reports). docs/CONFIGURATION.md, "Mounting".
"""

from typing import Any

from django.urls import include, path

from likha_realtime.conf import socket_enabled, socket_path
from likha_realtime.http.graphql import graphql_view
from likha_realtime.http.health import healthz, readyz
from likha_realtime.http.metrics import metrics
from likha_realtime.http.views import ItemsView, server_info

urlpatterns: list[Any] = [
    path("auth/", include("realtime_auth.urls")),
    path("server/info", server_info, name="server-info"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("items/<str:collection>", ItemsView.as_view(), name="items"),
    path("items/<str:collection>/<str:pk>", ItemsView.as_view(), name="item"),
]

if socket_enabled("graphql") and (_graphql := graphql_view()) is not None:
    urlpatterns.append(path(socket_path("graphql").lstrip("/"), _graphql, name="graphql"))
