"""HTTP routes of likha_realtime: /server/info and /items."""

from typing import Any

from django.urls import path

from likha_realtime.conf import socket_enabled, socket_path
from likha_realtime.http.graphql import graphql_view
from likha_realtime.http.views import ItemsView, server_info

urlpatterns: list[Any] = [
    path("server/info", server_info, name="server-info"),
    path("items/<str:collection>", ItemsView.as_view(), name="items"),
    path("items/<str:collection>/<str:pk>", ItemsView.as_view(), name="item"),
]

if socket_enabled("graphql") and (_graphql := graphql_view()) is not None:
    urlpatterns.append(path(socket_path("graphql").lstrip("/"), _graphql, name="graphql"))
