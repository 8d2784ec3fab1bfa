"""HTTP routes of the demo: the live demo page (/), the admin, and every realtime route (/auth, /items, /server/info,
/graphql, /healthz, /readyz, /metrics)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("erp_demo.urls")),
    path("", include("likha_realtime.urls")),
]
