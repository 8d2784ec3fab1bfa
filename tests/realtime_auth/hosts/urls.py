"""A host's URL configuration: realtime_auth's routes under ``auth/``, likha_realtime's at the root."""

from django.urls import include, path

urlpatterns = [
    path("auth/", include("realtime_auth.urls")),
    path("", include("likha_realtime.urls")),
]
