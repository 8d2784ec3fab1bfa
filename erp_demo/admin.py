"""Admin pages for the demo ERP's products, customers and sales orders."""

from __future__ import annotations

from django.contrib import admin

from erp_demo.models import Customer, Product, SalesOrder


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "stock", "status", "updated")
    list_filter = ("status",)
    search_fields = ("sku", "name")
    ordering = ("id",)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "credit_limit", "created")
    search_fields = ("name", "email")
    ordering = ("id",)


@admin.register(SalesOrder)
class SalesOrderAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "status", "total", "created")
    list_filter = ("status",)
    list_select_related = ("customer",)
    search_fields = ("customer__name", "customer__email")
    autocomplete_fields = ("customer",)
    date_hierarchy = "created"
    ordering = ("id",)
