"""HTTP routes: /auth (tokens), /server/info, the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("auth/", include("realtime_auth.urls")),
    path("", include("likha_realtime.urls")),
]
