"""Property: for random rows and filters, ``evaluate`` on each row's snapshot selects what the database selects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erp_demo.models import Customer, Product, SalesOrder
from likha_realtime.query import compile_filter, evaluate, snapshot
from tests.likha_realtime.query.nullable import Gadget

# Mixed case, non-ASCII letters that SQLite's LOWER leaves alone, final/medial sigma, dotted capital I, a space.
ALPHABET = "aAZ éÉÄäßẞΣσςİi"
TEXTS = st.text(alphabet=ALPHABET, max_size=4)
UTC = dt.UTC
MOMENTS = [
    dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    dt.datetime(2024, 1, 1, tzinfo=UTC),
    dt.datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
    dt.datetime(2024, 6, 1, 12, tzinfo=UTC),
]
AMOUNTS = [Decimal("0.00"), Decimal("0.50"), Decimal("1.00"), Decimal("9.99"), Decimal("10.00"), Decimal("1234567.89")]
COUNTS = [0, 1, 2, 7, 2147483647]
FILTERS_PER_EXAMPLE = 4  # rows are the costly part of an example; several filters share them

FILTER_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "text": TEXTS,
    "decimal": st.sampled_from(["0", "0.5", 0.5, "9.99", 9.99, 10, 0, "1234567.89", "-1", "10.00", 1234567.89]),
    "int": st.sampled_from([-1, 0, 1, 2, 7, "2", 2147483647, 3.0]),
    "datetime": st.sampled_from(
        [
            "2024-01-01T00:00:00Z",
            "2024-01-01",
            "2024-01-01T02:00:00+02:00",
            "2024-01-01T00:00:00.5Z",
            "2024-06-01T12:00:00",
            "1999-12-31T23:59:59+00:00",
            "2030-01-01T00:00:00Z",
        ]
    ),
    "bool": st.booleans(),
}
COMMON_OPERATORS = ["_eq", "_neq", "_lt", "_lte", "_gt", "_gte", "_in", "_nin", "_between", "_null", "_nnull"]
TEXT_OPERATORS = ["_contains", "_ncontains", "_icontains", "_starts_with", "_ends_with"]

FIELDS: dict[type[models.Model], dict[str, Any]] = {
    Product: {"pk": "id", "name": "text", "sku": "text", "price": "decimal", "stock": "int", "status": "text",
              "updated": "datetime"},
    Customer: {"id": "id", "name": "text", "email": "text", "credit_limit": "decimal", "created": "datetime"},
    SalesOrder: {"id": "id", "status": "text", "total": "decimal", "created": "datetime", "customer": Customer},
    Gadget: {"id": "id", "name": "text", "weight": "decimal", "count": "int", "seen": "datetime", "flag": "bool",
             "customer": Customer},
}  # fmt: skip


def values(kind: str, pools: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """Filter values of a field kind; ``pools`` adds the values the rows hold (so filters hit as well as miss)."""
    if kind == "id":
        return st.sampled_from([*pools["id"], 0, 99999999])
    if pools.get(kind):  # mostly the rows' own values and their variants
        return st.one_of(st.sampled_from(pools[kind]), st.sampled_from(pools[kind]), FILTER_VALUES[kind])
    return FILTER_VALUES[kind]


def operation(kind: str, pools: dict[str, list[Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    names = st.sampled_from(COMMON_OPERATORS)
    if kind == "text":  # as likely as all the others together: they are where the backends differ most
        names = st.one_of(st.sampled_from(TEXT_OPERATORS), names)
    value = values(kind, pools)

    def argument(name: str) -> st.SearchStrategy[Any]:
        if name in ("_null", "_nnull"):
            return st.booleans()
        if name in ("_eq", "_neq"):
            return st.one_of(value, st.none()) if kind != "id" else value
        if name in ("_in", "_nin"):
            return st.lists(value, max_size=3)
        if name == "_between":
            return st.lists(value, min_size=2, max_size=2)
        return value

    return names.flatmap(lambda name: argument(name).map(lambda arg: (name, arg)))


def operators(kind: str, pools: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.lists(operation(kind, pools), min_size=1, max_size=2).map(dict)


def condition(model: type[models.Model], pools: dict[str, list[Any]], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    def build(name: str) -> st.SearchStrategy[dict[str, Any]]:
        kind = FIELDS[model][name]
        if not isinstance(kind, type):
            return operators(kind, pools).map(lambda ops: {name: ops})
        related, inner = kind, {**pools, "id": pools["related_ids"]}
        direct = operators("id", inner).map(lambda ops: {name: ops})
        nested = filters(related, inner, max(depth - 1, 0)).map(lambda sub: {name: sub})
        dotted = st.sampled_from(sorted(FIELDS[related])).flatmap(
            lambda sub: operators(FIELDS[related][sub], inner).map(lambda ops: {f"{name}.{sub}": ops})
        )
        return st.one_of(direct, nested, dotted)

    return st.sampled_from(sorted(FIELDS[model])).flatmap(build)


def filters(model: type[models.Model], pools: dict[str, list[Any]], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = condition(model, pools, depth)
    if depth == 0:
        return leaf
    inner = filters(model, pools, depth - 1)
    both = st.tuples(leaf, inner).map(lambda pair: {**pair[1], **pair[0]})
    logical = st.tuples(st.sampled_from(["_and", "_or"]), st.lists(inner, min_size=1, max_size=3))
    return st.one_of(leaf, both, logical.map(lambda pair: {pair[0]: pair[1]}))


ROW = {
    "text": TEXTS,
    "decimal": st.sampled_from(AMOUNTS),
    "int": st.sampled_from(COUNTS),
    "datetime": st.sampled_from(MOMENTS),
    "bool": st.booleans(),
}


def create_customers(draw: st.DrawFn) -> list[Customer]:
    customers = []
    for index, (name, limit, created) in enumerate(
        draw(st.lists(st.tuples(ROW["text"], ROW["decimal"], ROW["datetime"]), min_size=1, max_size=4))
    ):
        customer = Customer.objects.create(name=name, email=f"{index}{name}@x.test", credit_limit=limit)
        Customer.objects.filter(pk=customer.pk).update(created=created)  # auto_now_add ignores a given value
        customers.append(customer)
    return customers


def create_rows(model: type[models.Model], draw: st.DrawFn, customers: list[Customer]) -> None:
    if model is Product:
        for index, (name, price, stock, status, updated) in enumerate(
            draw(st.lists(st.tuples(TEXTS, ROW["decimal"], ROW["int"], st.sampled_from(["active", "draft"]),
                                    ROW["datetime"]), max_size=6))
        ):  # fmt: skip
            product = Product.objects.create(name=name, sku=f"{index}{name}", price=price, stock=stock, status=status)
            Product.objects.filter(pk=product.pk).update(updated=updated)  # auto_now ignores a given value
    elif model is SalesOrder:
        for customer, status, total, created in draw(
            st.lists(st.tuples(st.sampled_from(customers), TEXTS, ROW["decimal"], ROW["datetime"]), max_size=6)
        ):
            SalesOrder.objects.create(customer=customer, status=status, total=total, created=created)
    elif model is Gadget:
        maybe = {name: st.one_of(st.none(), strategy) for name, strategy in ROW.items()}
        for name, weight, count, seen, flag, customer in draw(
            st.lists(st.tuples(maybe["text"], maybe["decimal"], maybe["int"], maybe["datetime"], maybe["bool"],
                               st.one_of(st.none(), st.sampled_from(customers))), max_size=6)
        ):  # fmt: skip
            Gadget.objects.create(name=name, weight=weight, count=count, seen=seen, flag=flag, customer=customer)


def value_pools(rows: list[dict[str, Any]], customers: list[Customer]) -> dict[str, list[Any]]:
    pools: dict[str, list[Any]] = {"id": [row["pk"] for row in rows], "related_ids": [c.pk for c in customers]}
    texts = [value for row in rows for value in row.values() if isinstance(value, str)]
    texts += [text for customer in customers for text in (customer.name, customer.email)]
    pools["text"] = variants(texts)
    return pools


def variants(texts: list[str]) -> list[str]:
    """Substrings and case changes of stored text, so that text operators hit and case folding is put to the test."""
    return sorted({variant for text in texts for variant in (text, text[1:3], text.upper(), text.lower()[:2])})


PROPERTY = settings(
    max_examples=60, deadline=None, database=None, report_multiple_bugs=False, suppress_health_check=list(HealthCheck)
)


@pytest.mark.django_db
@pytest.mark.usefixtures("gadgets")
@pytest.mark.parametrize("model", [Product, Customer, SalesOrder, Gadget], ids=lambda model: model.__name__)
@PROPERTY
@given(data=st.data())
def test_evaluate_selects_the_rows_the_database_selects(model: type[models.Model], data: st.DataObject) -> None:
    with transaction.atomic():
        customers = create_customers(data.draw)
        create_rows(model, data.draw, customers)
        rows = list(model.objects.order_by("pk"))
        snapshots = [snapshot(row) for row in rows]
        strategy = filters(model, value_pools(snapshots, customers), depth=3)
        for raw in data.draw(st.lists(strategy, min_size=FILTERS_PER_EXAMPLE, max_size=FILTERS_PER_EXAMPLE)):
            q = compile_filter(model, raw)
            expected = {record["pk"] for record in snapshots if evaluate(q, record, connection.vendor)}
            assert set(model.objects.filter(q).values_list("pk", flat=True)) == expected, (raw, q)
        transaction.set_rollback(True)


TEXT_CASES = st.sampled_from([*TEXT_OPERATORS, "_eq", "_lt", "_gte", "_between", "_in"])


@pytest.mark.django_db
@PROPERTY
@given(names=st.lists(TEXTS, min_size=1, max_size=6), data=st.data())
def test_text_operators_select_the_rows_the_database_selects(names: list[str], data: st.DataObject) -> None:
    with transaction.atomic():
        rows = [Product.objects.create(name=name, sku=f"t{index}") for index, name in enumerate(names)]
        value = st.one_of(st.sampled_from(variants(names)), TEXTS)
        for name, first, second in data.draw(st.lists(st.tuples(TEXT_CASES, value, value), min_size=10, max_size=10)):
            argument = [first, second] if name in ("_between", "_in") else first
            q = compile_filter(Product, {"name": {name: argument}})
            expected = {row.pk for row in rows if evaluate(q, snapshot(row), connection.vendor)}
            assert set(Product.objects.filter(q).values_list("pk", flat=True)) == expected, (name, argument)
        transaction.set_rollback(True)
