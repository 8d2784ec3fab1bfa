"""HTTP routes of likha_realtime."""

from django.urls import path

from likha_realtime.views import server_info

urlpatterns = [path("server/info", server_info, name="server-info")]
