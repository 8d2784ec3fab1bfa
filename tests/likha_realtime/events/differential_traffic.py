"""The traffic of the differential delivery test: subscribe messages and connections, and writes, as strategies.

A write is drawn as plain data (``WriteSpec``) and resolved against the rows there are when it runs (``prepare``):
the rows an update or delete picks, the values it gives (always other than the row's), the fields it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from erp_demo.models import Customer, SalesOrder
from likha_realtime.access.changes import track_changes
from likha_realtime.events import capture
from tests.likha_realtime.events.differential_world import (
    LIMITS,
    MODELS,
    NAMES,
    PRICES,
    PRODUCT_STATUSES,
    STATUSES,
    STOCKS,
    TOTALS,
    keys_of,
    new_customer,
    new_product,
)

# The values an update may give each field (it always picks one the row does not hold); "customer": another one.
VALUES: dict[str, dict[str, tuple[Any, ...]]] = {
    "sales_orders": {"status": STATUSES, "total": TOTALS, "customer": ()},
    "customers": {"name": NAMES, "credit_limit": LIMITS},
    "products": {"stock": STOCKS, "price": PRICES, "status": PRODUCT_STATUSES},
}

# -- subscriptions ---------------------------------------------------------------------------------------------

FIELDS: dict[str, tuple[list[str], ...]] = {
    "products": (["*"], ["id", "name"], ["id", "stock", "status"], ["price"]),
    "customers": (["*"], ["id", "name"], ["id", "credit_limit"]),
    "sales_orders": (
        ["*"],
        ["id", "customer.*"],
        ["id", "customer.*"],
        ["id", "status", "customer.name"],
        ["id", "customer.credit_limit"],
        ["*", "customer.*"],
        ["*", "customer.*"],
        ["total", "customer"],
    ),
}
SUBSCRIBED = ("sales_orders", "sales_orders", "sales_orders", "customers", "products")  # relations: most often


def filters(collection: str, keys: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def some(name: str) -> st.SearchStrategy[list[Any]]:
        return st.lists(st.sampled_from(keys[name]), min_size=1, max_size=2, unique=True)

    if collection == "products":
        fixed = [{"stock": {"_gt": 5}}, {"status": {"_eq": "active"}}, {"price": {"_gt": "5"}}]
        by_key = some("products").map(lambda ids: {"id": {"_in": ids}})
    elif collection == "customers":
        fixed = [{"credit_limit": {"_gt": "10"}}, {"name": {"_eq": "Hidden"}}]
        by_key = some("customers").map(lambda ids: {"id": {"_in": ids}})
    else:
        fixed = [
            {"status": {"_eq": "draft"}},
            {"total": {"_gt": "10"}},
            {"customer.credit_limit": {"_gt": "10"}},
            {"customer.name": {"_eq": "Acme"}},
            {"customer": {"name": {"_eq": "Zed"}}},
        ]
        by_key = some("customers").map(lambda ids: {"customer": {"_in": ids}})
    return st.one_of(st.sampled_from(fixed), by_key)


def messages(collection: str, keys: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Subscribe messages (without uid): mostly of every row and action; ``item`` as an integer or as text."""
    query = st.fixed_dictionaries(
        {"fields": st.sampled_from(FIELDS[collection])},
        optional={"filter": filters(collection, keys), "sort": st.just(["-id"])},
    )
    item = st.sampled_from(keys[collection]).flatmap(lambda key: st.sampled_from([key, str(key)]))
    return st.builds(
        lambda query, item, event: {
            "type": "subscribe",
            "collection": collection,
            "query": query,
            **({} if item is None else {"item": item}),
            **({} if event is None else {"event": event}),
        },
        query,
        st.one_of(st.none(), st.none(), st.none(), item),
        st.sampled_from([None, None, None, None, None, None, "create", "update", "delete"]),
    )


def subscribers(
    collection: str, labels: list[str], keys: dict[str, list[Any]]
) -> st.SearchStrategy[list[tuple[str, list[dict[str, Any]]]]]:
    """Connections (a principal's label, its subscribe messages), in a random order: every principal connects (some
    twice), with messages from a pool of one or two, so that equal queries under different rights are the rule:
    that is where a shared re-read can go wrong."""

    def connections(pool: list[dict[str, Any]]) -> st.SearchStrategy[list[tuple[str, list[dict[str, Any]]]]]:
        chosen = st.lists(st.sampled_from(pool), min_size=1, max_size=2)
        everyone = st.tuples(*(st.tuples(st.just(label), chosen) for label in labels))
        again = st.lists(st.tuples(st.sampled_from(labels), chosen), max_size=2)
        return st.tuples(everyone, again).flatmap(lambda both: st.permutations([*both[0], *both[1]]))

    return st.lists(messages(collection, keys), min_size=1, max_size=2).flatmap(connections)


# -- writes ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteSpec:
    """A write, resolved against the rows there are when it runs: ``pick`` (modulo) chooses the row(s)."""

    action: str  # create, update, delete, or announce (capture.publish of an update: changed fields unknown)
    collection: str
    pick: int
    fields: tuple[str, ...] = ()  # update: the fields it changes
    choice: int = 0  # which of the other values each changed field gets; which values a create gets
    # update: how it is saved — "save" (the event does not know which fields changed), "update_fields"
    # (save(update_fields=...): it knows their names) or "tracked" (track_changes() first, as items writes do)
    saved: str = "save"
    count: int = 1  # delete: rows deleted by one QuerySet.delete() (one event with their keys)


@st.composite
def writes(draw: st.DrawFn, subscribed: str) -> WriteSpec:
    others = sorted(set(MODELS) - {subscribed})
    collection = draw(st.sampled_from([subscribed] * 6 + others))  # the others: writes no subscriber hears of
    action = draw(st.sampled_from(["update", "update", "create", "delete", "announce"]))
    fields: tuple[str, ...] = ()
    if action == "update":
        fields = tuple(sorted(draw(st.sets(st.sampled_from(sorted(VALUES[collection])), min_size=1, max_size=2))))
    return WriteSpec(
        action,
        collection,
        draw(st.integers(0, 3)),
        fields,
        draw(st.integers(0, 2)),
        draw(st.sampled_from(["save", "update_fields", "tracked"])) if action == "update" else "save",
        draw(st.integers(1, 2)) if action == "delete" else 1,
    )


@dataclass(frozen=True)
class Write:
    """A write ready to run: the keys it deletes (known before, to read what was visible), the fields it changes."""

    collection: str
    action: str
    run: Callable[[], Any]
    deleted: tuple[Any, ...] = ()
    changed: frozenset[str] | None = None  # update: the fields whose values it changes (None: not known)


def prepare(spec: WriteSpec) -> Write | None:
    """The write ``spec`` stands for now, or ``None`` when there is no row it can apply to."""
    model = MODELS[spec.collection]
    if spec.action == "create":
        return _create(spec)
    keys = keys_of(spec.collection)
    if spec.action == "delete" and spec.collection == "customers":  # orders protect their customer
        keys = list(Customer.objects.filter(orders__isnull=True).order_by("pk").values_list("pk", flat=True))
    if not keys:
        return None
    target = keys[spec.pick % len(keys)]
    if spec.action == "announce":
        return Write(spec.collection, "update", lambda: capture.publish(spec.collection, "update", [target]))
    if spec.action == "delete":
        deleted = tuple(sorted({keys[(spec.pick + step) % len(keys)] for step in range(spec.count)}))
        if len(deleted) == 1:
            return Write(spec.collection, "delete", model._default_manager.get(pk=target).delete, deleted)
        return Write(spec.collection, "delete", model._default_manager.filter(pk__in=deleted).delete, deleted)
    return _update(spec, model._default_manager.get(pk=target))


def _update(spec: WriteSpec, instance: Any) -> Write | None:
    changed = []
    for name in spec.fields:
        attname = "customer_id" if name == "customer" else name
        pool = keys_of("customers") if name == "customer" else VALUES[spec.collection][name]
        others = [value for value in pool if value != getattr(instance, attname)]
        if others:
            setattr(instance, attname, others[spec.choice % len(others)])
            changed.append(name)
    if not changed:
        return None
    if spec.saved == "update_fields":
        named = tuple(changed)
        return Write(spec.collection, "update", lambda: instance.save(update_fields=named), changed=frozenset(named))
    if spec.collection == "products":
        changed.append("updated")  # auto_now: a full save sets it
    if spec.saved == "tracked":
        return Write(spec.collection, "update", lambda: tracked_save(instance, spec), changed=frozenset(changed))
    return Write(spec.collection, "update", instance.save, changed=frozenset(changed))


def tracked_save(instance: Any, spec: WriteSpec) -> None:
    """``track_changes()`` on the row as stored, the drawn values set again, then a full save: the event names the
    fields whose values changed, as after an items update."""
    stored = type(instance)._default_manager.get(pk=instance.pk)
    track_changes(stored)
    for field in type(instance)._meta.concrete_fields:
        setattr(stored, field.attname, getattr(instance, field.attname))
    stored.save()


def _create(spec: WriteSpec) -> Write | None:
    pick, choice = spec.pick, spec.choice
    if spec.collection == "customers":
        return Write("customers", "create", lambda: new_customer(NAMES[choice % 3], LIMITS[pick % 3]))
    if spec.collection == "products":
        values = (NAMES[choice % 3], STOCKS[pick % 3], PRICES[pick % 2], PRODUCT_STATUSES[choice % 2])
        return Write("products", "create", lambda: new_product(*values))
    customers = keys_of("customers")
    if not customers:
        return None
    customer = customers[pick % len(customers)]
    return Write(
        "sales_orders",
        "create",
        lambda: SalesOrder.objects.create(customer_id=customer, status=STATUSES[choice % 3], total=TOTALS[pick % 3]),
    )
