"""How the inventory app exposes its models to the realtime sockets (called from ``InventoryConfig.ready()``)."""

from typing import Any

from likha_realtime.access.collections import register


def item_fields(user: Any) -> list[str] | None:
    """Unit costs are for those who may change items; everyone else reads the other fields."""
    if user.is_authenticated and user.has_perm("inventory.change_item"):
        return None
    return ["id", "sku", "name", "quantity"]


def register_collections() -> None:
    register("stock_items", "inventory.Item", readable_fields=item_fields)
