"""``manage.py restock``: a batch job that adds stock with one bulk UPDATE and publishes it to subscribers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import F

from erp_demo.models import Product
from likha_realtime.events import publish


class Command(BaseCommand):
    help = "Add stock to products (all, or those given by --sku) in one bulk update, published as one event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sku", action="append", default=[], help="a product SKU (repeatable)")
        parser.add_argument("--add", type=int, required=True, help="units to add to each product's stock")

    def handle(self, *args: Any, sku: list[str], add: int, **options: Any) -> None:
        products = Product.objects.filter(sku__in=sku) if sku else Product.objects.all()
        with transaction.atomic():
            keys = list(products.select_for_update().values_list("pk", flat=True))
            Product.objects.filter(pk__in=keys).update(stock=F("stock") + add)
            # QuerySet.update() sends no model signals: announce the rows it changed (sent after commit).
            publish("products", "update", keys)
        self.stdout.write(f"Restocked {len(keys)} product(s) by {add}.")
