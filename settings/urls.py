"""HTTP routes of the demo: the admin, and every realtime route (/auth, /items, /server/info, /graphql)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("likha_realtime.urls")),
]
