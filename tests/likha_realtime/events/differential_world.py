"""The world of the differential delivery test: principals, rows and rules, as strategies, and made real.

Everything random is drawn as plain data (so hypothesis prints and shrinks it), then made real here: groups and users
with Django permissions, the demo rows, and the demo collections re-registered under their own names with the drawn
row and field rules (a model is registered under one name only: re-registering is how rules vary). Writes publish
through the real capture (on-commit hooks); ``published`` keeps their events instead of sending them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from unittest import mock

from django.contrib.auth.models import Group, Permission
from django.db.models import Model, Q
from hypothesis import strategies as st

from erp_demo import realtime as demo
from erp_demo.models import Customer, Product, SalesOrder, User
from likha_realtime.access.collections import registry
from likha_realtime.events import capture
from likha_realtime.events.model import Event
from realtime_auth.conf import auth_settings
from tests.likha_realtime.support import restore_collection

MODELS: dict[str, type[Model]] = {"products": Product, "customers": Customer, "sales_orders": SalesOrder}
PUBLIC = "public"  # the label of the public role (AnonymousUser, the rights of the PUBLIC_ROLE group)
GROUPS = ("Editors", "Finance")
PERMISSIONS = tuple(
    f"{action}_{model}"
    for model in ("product", "customer", "salesorder")
    for action in ("view", "add", "change", "delete")
)
# The permissions that change what a principal reads (rights, and the demo's rules): drawn far more often.
READING = ("view_product", "view_customer", "view_salesorder", "change_customer", "change_salesorder")
# A user's own permissions, besides its groups': often none, or one that the demo's rules read (as the finance
# user of the issue: an editor who may change customers, and so reads their credit limit).
DIRECT: tuple[frozenset[str], ...] = (frozenset(), frozenset({"change_customer"}), frozenset({"change_salesorder"}))
MEMBERSHIPS: tuple[frozenset[str], ...] = (
    frozenset({"Editors"}),
    frozenset({"Editors"}),
    frozenset(GROUPS),
    frozenset({"Finance"}),
    frozenset(),
)

NAMES = ("Acme", "Hidden", "Zed")
LIMITS = (Decimal("0.00"), Decimal("50.00"), Decimal("1000.00"))
STATUSES = ("confirmed", "draft", "shipped")  # the simplest (what hypothesis tries first) visible to all
TOTALS = (Decimal("0.00"), Decimal("50.00"), Decimal("500.00"))
STOCKS = (0, 5, 20)
PRICES = (Decimal("1.00"), Decimal("9.99"))
PRODUCT_STATUSES = ("active", "draft")
_unique = itertools.count()  # emails and SKUs: unique across examples too, whatever the database kept


def label_of(user: Any) -> str:
    """The label a rule sees for a user: ``u0``, ``u1``... from the email, or ``public``."""
    return str(user.email).partition("@")[0] if user.is_authenticated else PUBLIC


# -- principals ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSpec:
    label: str
    groups: frozenset[str]
    permissions: frozenset[str]  # directly granted, besides the groups'
    superuser: bool


@dataclass(frozen=True)
class Rights:
    groups: tuple[tuple[str, frozenset[str]], ...]  # (name, permission codenames), the public role's group first
    users: tuple[UserSpec, ...]


def permission_sets() -> st.SearchStrategy[frozenset[str]]:
    """Each view permission three times in four, each change permission (the demo's rules read them) one in two."""
    likely = st.sampled_from([True, True, True, False])
    flags = st.tuples(*(likely if name.startswith("view") else st.booleans() for name in READING))
    return st.builds(
        lambda chosen, other: frozenset(name for name, flag in zip(READING, chosen, strict=True) if flag) | other,
        flags,
        st.sets(st.sampled_from(PERMISSIONS), max_size=1),
    )


@st.composite
def rights(draw: st.DrawFn) -> Rights:
    """The public role's group and two more, with random permissions; three to five users in them, with their own."""
    groups = tuple((name, draw(permission_sets())) for name in (auth_settings.PUBLIC_ROLE, *GROUPS))
    users = tuple(
        UserSpec(
            f"u{index}",
            draw(st.sampled_from(MEMBERSHIPS)),
            draw(st.one_of(st.sampled_from(DIRECT), st.sampled_from(DIRECT), permission_sets())),
            draw(st.sampled_from([False, False, False, True])),
        )
        for index in range(draw(st.integers(3, 5)))
    )
    return Rights(groups, users)


def create_principals(spec: Rights) -> dict[str, int | None]:
    """The groups and users of ``spec``; each label's user key (``None``: the public role)."""

    def permissions(codenames: frozenset[str]) -> Any:
        return Permission.objects.filter(content_type__app_label="erp_demo", codename__in=codenames)

    groups: dict[str, Group] = {}
    for name, codenames in spec.groups:
        groups[name] = Group.objects.create(name=name)
        groups[name].permissions.set(permissions(codenames))
    users: dict[str, int | None] = {PUBLIC: None}
    for user in spec.users:
        created = User.objects.create_user(f"{user.label}@differential.test", is_superuser=user.superuser)
        created.groups.set([groups[name] for name in sorted(user.groups)])
        created.user_permissions.set(permissions(user.permissions))
        users[user.label] = created.pk
    return users


def reset_database() -> None:
    """Rows, users and groups of the previous example (transactional test: nothing rolls back between examples)."""
    for model in (SalesOrder, Customer, Product, User, Group):
        model._default_manager.all().delete()


# -- rows ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    customers: tuple[tuple[str, Decimal], ...]  # name, credit limit
    products: tuple[tuple[str, int, Decimal, str], ...]  # name, stock, price, status
    orders: tuple[tuple[int, str, Decimal], ...]  # customer (an index, modulo), status, total


ROWS = st.builds(
    Rows,
    customers=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(LIMITS)), min_size=2, max_size=3).map(tuple),
    products=st.lists(
        st.tuples(
            st.sampled_from(NAMES), st.sampled_from(STOCKS), st.sampled_from(PRICES), st.sampled_from(PRODUCT_STATUSES)
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
    orders=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(STATUSES), st.sampled_from(TOTALS)), min_size=1, max_size=4
    ).map(tuple),
)


def new_customer(name: str, limit: Decimal) -> Customer:
    return Customer.objects.create(name=name, email=f"c{next(_unique)}@differential.test", credit_limit=limit)


def new_product(name: str, stock: int, price: Decimal, status: str) -> Product:
    return Product.objects.create(name=name, sku=f"S-{next(_unique)}", stock=stock, price=price, status=status)


def create_rows(spec: Rows) -> dict[str, list[Any]]:
    """The rows of ``spec``; each collection's keys, in key order."""
    customers = [new_customer(*row) for row in spec.customers]
    for row in spec.products:
        new_product(*row)
    for index, status, total in spec.orders:
        SalesOrder.objects.create(customer=customers[index % len(customers)], status=status, total=total)
    return {name: keys_of(name) for name in MODELS}


def keys_of(collection: str) -> list[Any]:
    return list(MODELS[collection]._default_manager.order_by("pk").values_list("pk", flat=True))


# -- rules -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """One collection's rules: ``"demo"`` (the demo's own, which depend on permissions), ``None``, or one choice per
    principal label from a pool of two: principals get equal rules (compiling to equal SQL) or different ones."""

    row: str | tuple[tuple[str, Q | None], ...] | None
    fields: str | tuple[tuple[str, tuple[str, ...] | None], ...] | None


DEMO_RULES: dict[str, tuple[Any, Any]] = {  # (row rule, field rule) of erp_demo/realtime.py
    "products": (None, demo.product_fields),
    "customers": (None, demo.customer_fields),
    "sales_orders": (demo.sales_order_rows, None),
}


def row_options(collection: str, keys: dict[str, list[Any]]) -> st.SearchStrategy[Q | None]:
    def among(name: str) -> st.SearchStrategy[list[Any]]:
        return st.sets(st.sampled_from(keys[name]), min_size=1).map(sorted)

    if collection == "customers":
        fixed = [Q(credit_limit__lt=Decimal("100")), ~Q(name="Hidden")]
        chosen = among("customers").map(lambda ids: Q(id__in=ids))
    elif collection == "sales_orders":  # per user: the orders of some customers
        fixed = [~Q(status="draft"), Q(total__gt=Decimal("10"))]
        chosen = among("customers").map(lambda ids: Q(customer__id__in=ids))
    else:
        fixed = [Q(status="active"), Q(stock__gt=0)]
        chosen = among("products").map(lambda ids: Q(id__in=ids))
    return st.one_of(st.none(), st.sampled_from(fixed), chosen)


def field_options(collection: str) -> st.SearchStrategy[tuple[str, ...] | None]:
    """Every field, or all but one or two (as real field rules hide a few)."""
    names = [f.name for f in MODELS[collection]._meta.concrete_fields if not f.primary_key]
    hidden = st.sets(st.sampled_from(names), min_size=1, max_size=2)
    return st.one_of(st.none(), hidden.map(lambda hide: tuple(name for name in names if name not in hide)))


def per_label(labels: list[str], options: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[tuple[str, Any], ...]]:
    """One option per label, from a pool of two different ones: labels share rules, or do not."""
    return st.lists(options, min_size=2, max_size=2, unique_by=repr).flatmap(
        lambda pool: st.tuples(*(st.tuples(st.just(label), st.sampled_from(pool)) for label in labels))
    )


def rules(labels: list[str], keys: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Rules]]:
    def one(collection: str) -> st.SearchStrategy[Rules]:
        def kinds(options: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            chosen = per_label(labels, options)
            return st.one_of(st.just("demo"), st.just("demo"), st.none(), chosen, chosen)

        return st.builds(Rules, row=kinds(row_options(collection, keys)), fields=kinds(field_options(collection)))

    return st.fixed_dictionaries({collection: one(collection) for collection in MODELS})


def _callable(choice: Any, demo_rule: Any) -> Callable[[Any], Any] | None:
    if choice == "demo":
        return demo_rule  # type: ignore[no-any-return]
    if isinstance(choice, tuple):
        table = dict(choice)
        return lambda user: table[label_of(user)]
    return None


@contextmanager
def registered(drawn: dict[str, Rules]) -> Iterator[None]:
    """The demo collections, re-registered under their names with the drawn rules; the originals afterwards."""
    originals = {name: registry.get(name) for name in MODELS}  # registered by the demo app's ready()
    try:
        for name, spec in drawn.items():
            original = originals[name]
            assert original is not None
            row_rule, field_rule = DEMO_RULES[name]
            registry.register(
                name,
                original.model,
                row_rule=_callable(spec.row, row_rule),
                readable_fields=_callable(spec.fields, field_rule),
                fields=original.fields,
            )
        yield
    finally:
        for original in originals.values():
            if original is not None:
                restore_collection(original)


@contextmanager
def published() -> Iterator[list[Event]]:
    """The events capture publishes after each commit, kept here instead of sent to the channel layer."""
    events: list[Event] = []
    with mock.patch.object(capture, "publish_events", events.extend):
        yield events
