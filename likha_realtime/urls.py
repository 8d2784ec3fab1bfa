"""HTTP routes of likha_realtime: /server/info and /items."""

from django.urls import path

from likha_realtime.http_items import ItemsView
from likha_realtime.views import server_info

urlpatterns = [
    path("server/info", server_info, name="server-info"),
    path("items/<str:collection>", ItemsView.as_view(), name="items"),
    path("items/<str:collection>/<str:pk>", ItemsView.as_view(), name="item"),
]
