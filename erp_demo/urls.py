"""The demo ERP's page: ``/`` (a live view of the realtime sockets, erp_demo.views.demo)."""

from django.urls import path

from erp_demo.views import demo

urlpatterns = [path("", demo, name="demo")]
