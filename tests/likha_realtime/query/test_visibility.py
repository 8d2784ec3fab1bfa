"""Related rows a guard hides: filters through a relation require the related row to be visible, the database and
``evaluate`` agree on every row (NULL relations included), and what ``evaluate`` cannot answer is Unevaluable."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import Exists, Model, OuterRef, Q

from erp_demo.models import Customer, SalesOrder
from likha_realtime.query import Unevaluable, compile_filter, evaluate, snapshot
from likha_realtime.query.filters import Guard
from likha_realtime.query.visibility import VisibleKeys
from tests.likha_realtime.query.nullable import Gadget

RULE = ~Q(name="Hidden")


class Hiding(Guard):
    """Hides the customers named "Hidden" (``rule``: what it answers for customers)."""

    def __init__(self, rule: Q | None = RULE) -> None:
        self.rule = rule

    def visible(self, model: type[Model]) -> Q | None:
        return self.rule if model is Customer else None


def shown(path: str = "customer") -> Q:
    return Q(**{f"{path}__in": VisibleKeys(Customer, RULE, "id")})


RELATIONAL = [
    {"customer.name": {"_eq": "Ann"}},
    {"customer": {"name": {"_neq": "Ann"}, "email": {"_null": True}}},
    {"_or": [{"status": {"_eq": "draft"}}, {"customer": {"_or": [{"name": {"_eq": "A"}}, {"id": {"_gt": 2}}]}}]},
    {"customer": {"_eq": 5}},
]


@pytest.mark.parametrize("raw", RELATIONAL)
@pytest.mark.parametrize("rule", [None, Q()], ids=["no-rule", "empty-rule"])
def test_a_guard_that_hides_no_row_compiles_the_same_q(raw: dict[str, Any], rule: Q | None) -> None:
    assert compile_filter(SalesOrder, raw, guard=Hiding(rule)) == compile_filter(SalesOrder, raw)


@pytest.mark.parametrize(
    ("model", "raw", "expected"),
    [
        (SalesOrder, {"customer.name": {"_eq": "Ann"}}, shown() & Q(customer__name__exact="Ann")),
        (SalesOrder, {"customer": {"name": {"_eq": "Ann"}}}, shown() & Q(customer__name__exact="Ann")),
        (
            SalesOrder,
            {"customer": {"name": {"_neq": "Ann"}, "email": {"_null": True}}},
            shown()
            & ((Q(customer__name__isnull=True) | ~Q(customer__name__exact="Ann")) & Q(customer__email__isnull=True)),
        ),
        (
            SalesOrder,
            {"customer.name": {"_eq": "Ann"}, "customer.email": {"_eq": "a@x.test"}},
            (shown() & Q(customer__name__exact="Ann")) & (shown() & Q(customer__email__exact="a@x.test")),
        ),
        (
            SalesOrder,
            {"_or": [{"status": {"_eq": "draft"}}, {"customer.name": {"_eq": "Ann"}}]},
            Q(status__exact="draft") | (shown() & Q(customer__name__exact="Ann")),
        ),
        (SalesOrder, {"customer": {"_eq": 5}}, Q(customer__id__exact=5)),  # the order's own key
        (
            SalesOrder,
            {"customer": {"_eq": 5, "name": {"_eq": "Ann"}}},
            Q(customer__id__exact=5) & (shown() & Q(customer__name__exact="Ann")),
        ),
        (
            Gadget,  # a nullable relation: a NULL one hides nothing
            {"customer.name": {"_eq": "Ann"}},
            (Q(customer__isnull=True) | shown()) & Q(customer__name__exact="Ann"),
        ),
    ],
)
def test_a_condition_through_a_relation_requires_the_related_row_to_be_visible(
    model: type[Model], raw: dict[str, Any], expected: Q
) -> None:
    assert compile_filter(model, raw, guard=Hiding()) == expected


# -- the database and evaluate, row by row -------------------------------------------------------------------------


def world() -> dict[str, int]:
    """Orders and gadgets of a visible customer ("Ann") and a hidden one ("Hidden"), and a gadget without one."""
    ann = Customer.objects.create(name="Ann", email="ann@x.test")
    hidden = Customer.objects.create(name="Hidden", email="h@x.test")
    return {
        "ann": SalesOrder.objects.create(customer=ann, status="draft").pk,
        "hidden": SalesOrder.objects.create(customer=hidden, status="draft").pk,
        "ann-confirmed": SalesOrder.objects.create(customer=ann, status="confirmed").pk,
        "hidden-confirmed": SalesOrder.objects.create(customer=hidden, status="confirmed").pk,
        "gadget-ann": Gadget.objects.create(customer=ann).pk,
        "gadget-hidden": Gadget.objects.create(customer=hidden).pk,
        "gadget-none": Gadget.objects.create().pk,
        "hidden-customer": hidden.pk,
    }


ORDER_CASES = [
    pytest.param({"customer.name": {"_eq": "Hidden"}}, [], id="eq-hidden-value"),
    pytest.param({"customer": {"name": {"_eq": "Ann"}}}, ["ann", "ann-confirmed"], id="eq-visible-value"),
    pytest.param({"customer.name": {"_neq": "Ann"}}, [], id="neq"),
    pytest.param({"customer.name": {"_nin": ["Ann"]}}, [], id="nin"),
    pytest.param({"customer.email": {"_ncontains": "ann"}}, [], id="ncontains"),
    pytest.param({"customer.name": {"_null": True}}, [], id="null"),
    pytest.param({"customer.name": {"_nnull": True}}, ["ann", "ann-confirmed"], id="nnull"),
    pytest.param({"customer.id": {"_nnull": True}}, ["ann", "ann-confirmed"], id="related-key"),
    pytest.param({"customer": {"_nnull": True}}, ["ann", "hidden", "ann-confirmed", "hidden-confirmed"], id="own-key"),
    pytest.param(
        {"_or": [{"status": {"_eq": "confirmed"}}, {"customer.name": {"_eq": "Hidden"}}]},
        ["ann-confirmed", "hidden-confirmed"],
        id="or-keeps-the-other-branch",
    ),
    pytest.param(
        {"_or": [{"status": {"_eq": "confirmed"}}, {"customer": {"name": {"_neq": "Ann"}}}]},
        ["ann-confirmed", "hidden-confirmed"],
        id="or-with-negation",
    ),
    pytest.param(
        {
            "_and": [
                {"status": {"_eq": "draft"}},
                {"customer": {"_or": [{"name": {"_eq": "Hidden"}}, {"id": {"_gt": 0}}]}},
            ]
        },
        ["ann"],
        id="and-or-nested",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("raw", "expected"), ORDER_CASES)
def test_a_hidden_related_row_matches_no_condition_in_the_database_and_in_evaluate(
    raw: dict[str, Any], expected: list[str]
) -> None:
    keys = world()
    q = compile_filter(SalesOrder, raw, guard=Hiding())

    matched = list(SalesOrder.objects.filter(q).order_by("pk").values_list("pk", flat=True))

    assert matched == [keys[name] for name in expected]
    for order in SalesOrder.objects.all():
        assert evaluate(q, snapshot(order), connection.vendor) is (order.pk in matched), order.pk


GADGET_CASES = [
    pytest.param({"customer.name": {"_null": True}}, ["gadget-none"], id="null"),
    pytest.param({"customer.name": {"_neq": "Ann"}}, ["gadget-none"], id="neq"),
    pytest.param({"customer.name": {"_eq": "Hidden"}}, [], id="eq-hidden-value"),
    pytest.param({"customer": {"name": {"_nnull": True}}}, ["gadget-ann"], id="nnull"),
    pytest.param({"customer": {"_null": True}}, ["gadget-none"], id="own-key"),
]


@pytest.mark.django_db
@pytest.mark.usefixtures("gadgets")
@pytest.mark.parametrize(("raw", "expected"), GADGET_CASES)
def test_a_null_relation_hides_nothing_and_still_reads_as_null(raw: dict[str, Any], expected: list[str]) -> None:
    keys = world()
    q = compile_filter(Gadget, raw, guard=Hiding())

    matched = list(Gadget.objects.filter(q).order_by("pk").values_list("pk", flat=True))

    assert matched == [keys[name] for name in expected]
    for gadget in Gadget.objects.all():
        assert evaluate(q, snapshot(gadget), connection.vendor) is (gadget.pk in matched), gadget.pk


# -- what evaluate cannot answer ---------------------------------------------------------------------------------

ANN = {"pk": 1, "id": 1, "name": "Ann", "email": "ann@x.test"}
ORDER = {"pk": 7, "id": 7, "status": "draft", "customer": ANN}


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(Q(orders__status="draft"), id="a-path-the-snapshot-lacks"),
        pytest.param(Exists(SalesOrder.objects.filter(customer=OuterRef("pk"))), id="an-expression"),
    ],
)
def test_a_rule_the_related_snapshot_cannot_answer_is_unevaluable(rule: Any) -> None:
    with pytest.raises(Unevaluable):
        evaluate(Q(customer__in=VisibleKeys(Customer, Q(rule), "id")), ORDER, "sqlite")


def test_a_related_row_known_by_its_key_only_is_unevaluable() -> None:
    with pytest.raises(Unevaluable):
        evaluate(shown(), {**ORDER, "customer": {"pk": 1, "id": 1}}, "sqlite")


def test_rows_a_default_manager_filters_are_unevaluable() -> None:
    keys = VisibleKeys(Customer, RULE, "id")
    keys.evaluable = False  # as for a model whose default manager filters its rows
    with pytest.raises(Unevaluable):
        evaluate(Q(customer__in=keys), ORDER, "sqlite")


def test_visible_keys_are_equal_for_the_same_rows_of_the_same_model() -> None:
    assert VisibleKeys(Customer, RULE, "id") == VisibleKeys(Customer, ~Q(name="Hidden"), "id")
    assert VisibleKeys(Customer, RULE, "id") != VisibleKeys(Customer, ~Q(name="Other"), "id")
    assert evaluate(shown(), ORDER, "sqlite") is True
    assert evaluate(shown(), {**ORDER, "customer": {**ANN, "name": "Hidden"}}, "sqlite") is False
