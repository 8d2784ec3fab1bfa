"""Admin pages for the demo ERP's users, products, customers and sales orders."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from erp_demo.models import Customer, Product, SalesOrder, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "is_staff", "is_superuser", "is_active")
    search_fields = ("email", "first_name", "last_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


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
