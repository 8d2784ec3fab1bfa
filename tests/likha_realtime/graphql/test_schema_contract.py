"""Subscription values of the GraphQL schema: strawberry's flaw with an ``event`` argument, and our extension for it.

strawberry 0.341.2 resolves a subscription's value with ``lambda event, *_, **__: event``, which fails on a field
argument named ``event``, the name PROTOCOL §8 gives ``<c>_mutated``'s argument. ``SubscriptionValues`` (a schema
extension, strawberry's public resolve hook) resolves it instead. The first test fails once strawberry no longer
has the flaw: then remove the extension.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from decimal import Decimal
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from erp_demo.management.commands import seed_demo
from erp_demo.models import Product, User
from likha_realtime.access.principal import Principal
from likha_realtime.events.fanout import Dispatcher
from likha_realtime.graphql.schema import SubscriptionValues, build_schema
from tests.likha_realtime.support import Roles, run_db

WAIT = 5.0  # seconds; a bound on waiting for a condition, never a pause


@strawberry.type
class Tick:
    label: str

    @strawberry.field
    def shout(self) -> str:
        return self.label.upper()


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(
        self, only: Annotated[str | None, strawberry.argument(name="event")] = None
    ) -> AsyncGenerator[Tick, None]:
        yield Tick(label=f"tick {only}")


def tiny_schema(*extensions: type[SchemaExtension]) -> strawberry.Schema:
    return strawberry.Schema(query=Query, subscription=Subscription, extensions=extensions)


async def first_result(schema: strawberry.Schema, query: str, **context: Any) -> ExecutionResult:
    stream = await schema.subscribe(query, context_value=context)
    assert not isinstance(stream, ExecutionResult), stream.errors
    async with aclosing(stream):
        return await asyncio.wait_for(anext(stream), WAIT)


async def test_strawberry_still_fails_on_a_subscription_argument_named_event() -> None:
    result = await first_result(tiny_schema(), 'subscription { ticks(event: "x") { label } }')

    assert result.data is None
    assert result.errors is not None and len(result.errors) == 1
    assert result.errors[0].message.endswith("got multiple values for argument 'event'"), (
        "strawberry resolves subscription values with an `event` argument now: remove SubscriptionValues"
    )


@pytest.mark.parametrize("arguments", ['(event: "x")', ""], ids=["given", "defaulted"])
async def test_the_extension_resolves_subscription_values_and_leaves_their_fields_to_strawberry(
    arguments: str,
) -> None:
    result = await first_result(
        tiny_schema(SubscriptionValues), f"subscription {{ ticks{arguments} {{ label shout }} }}"
    )

    label = "tick x" if arguments else "tick None"
    assert (result.data, result.errors) == ({"ticks": {"label": label, "shout": label.upper()}}, None)


async def test_the_extension_leaves_queries_to_strawberry() -> None:
    result = await tiny_schema(SubscriptionValues).execute("{ ok }", root_value=Query())

    assert (result.data, result.errors) == ({"ok": True}, None)


def create_product(sku: str) -> int:
    return Product.objects.create(sku=sku, name=f"Product {sku}", price=Decimal("1.00"), stock=1).pk


def set_stock(key: int, stock: int) -> None:
    product = Product.objects.get(pk=key)
    product.stock = stock
    product.save()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_layer")
async def test_products_mutated_with_event_update_delivers_only_updates(
    roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await run_db(lambda: Principal(User.objects.get(email=seed_demo.ADMIN_EMAIL)))
    key = await run_db(create_product, "SKU-A")
    joined = asyncio.Event()
    add = Dispatcher.add

    async def add_then_signal(self: Dispatcher, collection: str, listener: Any) -> None:
        await add(self, collection, listener)
        joined.set()

    monkeypatch.setattr(Dispatcher, "add", add_then_signal)
    schema = build_schema()
    assert schema is not None
    query = "subscription { products_mutated(event: update) { key event data { id stock } } }"
    stream = await schema.subscribe(
        query, context_value={"ws": SimpleNamespace(principal=admin, listen=set().add, unlisten=set().discard)}
    )
    assert not isinstance(stream, ExecutionResult), stream.errors
    async with aclosing(stream):
        first = asyncio.ensure_future(anext(stream))
        await asyncio.wait_for(joined.wait(), WAIT)  # the subscription listens to the fan-out
        await run_db(create_product, "SKU-B")  # a create first: delivered in order, it would be the first result
        await run_db(set_stock, key, 77)
        result = await asyncio.wait_for(first, WAIT)

    assert result.errors is None
    assert result.data == {
        "products_mutated": {"key": str(key), "event": "update", "data": {"id": str(key), "stock": 77}}
    }
