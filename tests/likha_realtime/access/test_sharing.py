"""Which subscriptions share an event re-read (``access.sharing``): exactly those whose compiled reads are equal."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from erp_demo.models import User
from likha_realtime.access import reads, sharing
from likha_realtime.access.principal import Principal
from likha_realtime.access.subscriptions import plan_for
from tests.likha_realtime.support import Roles

pytestmark = pytest.mark.django_db


def user(email: str, *, groups: tuple[str, ...] = ("Editors",), perms: tuple[str, ...] = ()) -> Principal:
    created = User.objects.create_user(email, "pw")
    created.groups.set(Group.objects.filter(name__in=groups))
    created.user_permissions.set(Permission.objects.filter(content_type__app_label="erp_demo", codename__in=perms))
    return Principal(User.objects.get(pk=created.pk))  # fresh: no permission cache


def key(principal: Principal, collection: str, query: dict[str, Any]) -> Any:
    return sharing.plan_key(plan_for(principal, collection, query))


def test_every_field_of_a_read_plan_is_accounted_for() -> None:
    # A new field of ReadPlan fails here until sharing.py says how its key covers it.
    assert {f.name for f in dataclasses.fields(reads.ReadPlan)} == set(sharing.COVERED)


def test_rights_on_a_related_collection_separate_subscriptions_of_one_query(roles: Roles) -> None:
    # The scenario: finance may read customers.credit_limit, the editor may not; same subscription.
    editor, finance = user("e@example.com"), user("f@example.com", perms=("change_customer",))
    query = {"fields": ["id", "customer.*"]}

    assert key(editor, "sales_orders", query) != key(finance, "sales_orders", query)
    assert key(editor, "sales_orders", query) == key(user("e2@example.com"), "sales_orders", query)


def test_a_row_rule_separates_and_equal_rules_share(roles: Roles) -> None:
    editor, manager = user("e@example.com"), user("m@example.com", perms=("change_salesorder",))
    query = {"fields": ["id"]}

    assert key(editor, "sales_orders", query) != key(manager, "sales_orders", query)
    assert key(manager, "sales_orders", query) == key(
        Principal(User.objects.get(is_superuser=True)), "sales_orders", query
    )


def test_principals_with_equal_reads_share_whoever_they_are(roles: Roles) -> None:
    public, editor = Principal(None), user("e@example.com")

    assert key(public, "products", {"fields": ["id", "name"]}) == key(editor, "products", {"fields": ["id", "name"]})
    assert key(public, "products", {"fields": ["*"]}) != key(editor, "products", {"fields": ["*"]})  # stock


def test_the_query_itself_is_part_of_the_key(roles: Roles) -> None:
    editor = user("e@example.com")
    base = key(editor, "products", {"fields": ["id"]})

    assert key(editor, "products", {"fields": ["id"], "filter": {"sku": {"_eq": "A"}}}) != base
    assert key(editor, "products", {"fields": ["id"], "filter": {"sku": {"_eq": "B"}}}) != key(
        editor, "products", {"fields": ["id"], "filter": {"sku": {"_eq": "A"}}}
    )
    assert key(editor, "products", {"fields": ["sku"]}) != base
    assert key(editor, "products", {"fields": ["id"], "sort": ["-price"]}) != base


def test_a_read_of_no_rows_has_a_key_too(roles: Roles) -> None:
    editor, public = user("e@example.com"), Principal(None)
    query = {"fields": ["id"], "filter": {"id": {"_in": []}}}

    assert key(editor, "products", query) == key(public, "products", query)


@pytest.mark.parametrize(
    ("one", "other"),
    [(1, True), (1, "1"), (1, 1.0), (Decimal("1"), 1), (None, "None"), ([1, 2], (1, 2))],
)
def test_parameters_of_different_types_never_match(one: Any, other: Any) -> None:
    assert sharing._param(one) != sharing._param(other)
    assert sharing._param(one) == sharing._param(one)


def test_a_parameter_that_cannot_be_compared_safely_matches_nothing_not_even_itself() -> None:
    value = {"a": 1}  # e.g. a JSON adapter's payload

    assert sharing._param(value) != sharing._param(value)


def test_watched_fields_are_those_shown_and_those_tested(roles: Roles) -> None:
    editor = user("e@example.com")
    plan = plan_for(editor, "sales_orders", {"fields": ["id", "customer.name"], "filter": {"total": {"_gt": 5}}})

    # customer: the relation's key is shown; status: the editor's row rule tests it; total: the filter.
    assert sharing.watched_fields(plan) == {"id", "customer", "status", "total"}


def test_a_rule_with_an_expression_watches_every_field(roles: Roles) -> None:
    from django.db.models import F, Q

    plan = plan_for(user("e@example.com"), "products", {"fields": ["id"]})
    plan = dataclasses.replace(plan, condition=Q(price__gt=F("stock")))

    assert sharing.watched_fields(plan) is None


def test_a_filter_through_a_row_ruled_relation_watches_that_relation_not_everything(roles: Roles) -> None:
    from django.db.models import Q

    from erp_demo.models import Customer
    from likha_realtime.query.visibility import VisibleKeys

    plan = plan_for(user("e@example.com"), "sales_orders", {"fields": ["id"]})
    visible = VisibleKeys(Customer, Q(name__startswith="A"), "id")
    plan = dataclasses.replace(plan, condition=plan.condition & Q(customer__in=visible))

    assert sharing.watched_fields(plan) == {"id", "customer", "status"}
