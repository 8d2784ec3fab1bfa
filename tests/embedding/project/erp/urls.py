"""The ERP's URLs: its own, and the realtime HTTP routes (/auth/*, /items/*, /server/info, /graphql)."""

from django.contrib import admin
from django.urls import include, path
from inventory import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("erp/ping", views.ping),
    path("erp/api/stock-report", views.stock_report),
    path("", include("likha_realtime.urls")),
]
