"""How the demo ERP exposes its models to the realtime layer: collections, row rules and field rules."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from likha_realtime.access.collections import register


def sales_order_rows(user: Any) -> Q | None:
    """Draft orders are work in progress: only those who may change orders see them."""
    if user.is_authenticated and user.has_perm("erp_demo.change_salesorder"):
        return None
    return ~Q(status="draft")


def customer_fields(user: Any) -> list[str] | None:
    """A customer's credit limit is for those who may change customers."""
    if user.is_authenticated and user.has_perm("erp_demo.change_customer"):
        return None
    return ["id", "name", "email", "created"]


def product_fields(user: Any) -> list[str] | None:
    """The public sees the catalogue, not the stock levels."""
    if user.is_authenticated:
        return None
    return ["id", "name", "sku", "price", "status", "updated"]


def register_collections() -> None:
    register("products", "erp_demo.Product", readable_fields=product_fields)
    register("customers", "erp_demo.Customer", readable_fields=customer_fields)
    register("sales_orders", "erp_demo.SalesOrder", row_rule=sales_order_rows)
