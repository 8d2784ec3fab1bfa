"""Helpers of the subscription, items, events and permission tests: sockets per role, frames, products to watch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.serializers.json import DjangoJSONEncoder
from django.test import override_settings

from erp_demo.models import Product
from likha_realtime.access.collections import Collection, registry
from likha_realtime.sockets.rest import RestConsumer

ROLES = ("admin", "editor", "public")
COLLECTIONS = ("products", "customers", "sales_orders")
ID_SKU_PRICE = {"fields": ["id", "sku", "price"]}
# How long a frame the test expects may take: a bound for a failing test, not a pace (CI's 2 cores may be busy).
FRAME_WAIT = 10


def restore_collection(original: Collection) -> None:
    """Register ``original`` again as it was (after a test re-registered its name with other rules)."""
    registry.register(
        original.name,
        original.model,
        row_rule=original.row_rule,
        readable_fields=original.field_rule,
        fields=original.fields,
    )


def realtime(**values: Any) -> override_settings:
    from django.conf import settings

    return override_settings(LIKHA_REALTIME={**settings.LIKHA_REALTIME, **values})


@dataclass(frozen=True)
class Roles:
    """Access tokens of the seeded admin and editor; the public role connects without one."""

    admin: str
    editor: str

    def path(self, role: str) -> str:
        if role == "public":
            return "/websockets"
        return f"/websockets?access_token={getattr(self, role)}"

    def headers(self, role: str) -> dict[str, str]:
        if role == "public":
            return {}
        return {"HTTP_AUTHORIZATION": f"Bearer {getattr(self, role)}"}


async def connected_socket(path: str, consumer: Any = RestConsumer) -> WebsocketCommunicator:
    """A socket of ``consumer`` at ``path``, under the settings in force; it must be accepted."""
    comm = WebsocketCommunicator(consumer.as_asgi(), path)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def open_socket(path: str) -> WebsocketCommunicator:
    """A REST socket in public mode (the role comes from ``?access_token=``, or is the public role)."""
    with realtime(REST_AUTH="public", HEARTBEAT_ENABLED=False):
        return await connected_socket(path)


async def closed_with(comm: WebsocketCommunicator) -> tuple[int, str | None]:
    """The close code and reason the server closed ``comm`` with (fails on any other output)."""
    output = await comm.receive_output(timeout=FRAME_WAIT)
    assert output["type"] == "websocket.close", output
    return output["code"], output.get("reason")


async def ask(comm: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    """Send ``frame`` and return the next frame the server sends."""
    await comm.send_json_to(frame)
    return await comm.receive_json_from(timeout=FRAME_WAIT)


def error(context: str, code: str, message: str, **uid: Any) -> dict[str, Any]:
    return {"type": context, "status": "error", "error": {"code": code, "message": message}, **uid}


def no_access(collection: str) -> str:
    return f'You don\'t have permission to access collection "{collection}" or it does not exist.'


def no_field(collection: str, field: str) -> str:
    return f'You don\'t have permission to access field "{field}" in collection "{collection}".'


def wire(value: Any) -> Any:
    """``value`` as it reads after a trip through the socket's JSON encoder (Decimal and datetime as text)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


async def run_db(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await database_sync_to_async(function)(*args, **kwargs)


# -- products and their subscription frames ---------------------------------------------------------------------


def make(*rows: tuple[str, str]) -> dict[str, int]:
    """Products by ``(sku, price)``, named after their SKU; returns sku -> key."""
    return {sku: Product.objects.create(sku=sku, name=f"Product {sku}", price=Decimal(price)).pk for sku, price in rows}


def set_price(key: int, price: str) -> None:
    product = Product.objects.get(pk=key)
    product.price = Decimal(price)
    product.save()


def delete(key: int) -> None:
    Product.objects.get(pk=key).delete()


async def subscribe(comm: WebsocketCommunicator, **message: Any) -> dict[str, Any]:
    """Subscribe to products; the ``init`` frame (the subscription listens once it is answered)."""
    init = await ask(comm, {"type": "subscribe", "collection": "products", **message})
    assert (init.get("type"), init.get("event")) == ("subscription", "init"), init
    return init


async def next_frame(comm: WebsocketCommunicator) -> dict[str, Any]:
    return await comm.receive_json_from(timeout=FRAME_WAIT)


def row(key: int, sku: str, price: str) -> dict[str, Any]:
    return {"id": key, "sku": sku, "price": price}


def event(action: str, data: Any, **uid: Any) -> dict[str, Any]:
    """A subscription's event frame."""
    return {"type": "subscription", "event": action, "data": data, **uid}
