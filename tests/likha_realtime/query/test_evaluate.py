"""evaluate on hand-written row rules, fold, the shapes it refuses (Unevaluable), and snapshot."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Exists, F, Q

from erp_demo.models import Customer, Product, SalesOrder
from likha_realtime.query import Unevaluable, evaluate, fold, snapshot
from tests.likha_realtime.query.nullable import Gadget

UTC = dt.UTC
CREATED = dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
ORDER = {
    "pk": 1,
    "id": 1,
    "customer": {"pk": 2, "id": 2, "name": "Ann", "credit_limit": Decimal("150.00"), "created": CREATED},
    "status": "draft",
    "total": Decimal("12.50"),
    "created": CREATED,
}
ORPHAN = {**ORDER, "customer": None}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (~Q(status="draft"), False),
        (~Q(status="shipped"), True),
        (Q(status=SalesOrder.Status.DRAFT), True),
        (Q(customer__credit_limit__gte=100), True),
        (Q(customer__credit_limit__gte=Decimal("150.01")), False),
        (Q(customer=2), True),
        (Q(customer=3), False),
        (Q(customer=Customer(pk=2)), True),
        (Q(customer__in=[Customer(pk=3), 2]), True),
        (Q(customer__pk=2), True),
        (Q(customer__isnull=True), False),
        (Q(pk=1), True),
        (Q(total__range=(Decimal("12.50"), 13)), True),
        (Q(created__lt=CREATED), False),
        (Q(created__lte=CREATED), True),
        (Q(status="draft") & Q(total__gt=20), False),
        (Q(status="draft") | Q(total__gt=20), True),
        (~(Q(status="shipped") | Q(total__gt=20)), True),
        (Q(customer__name__lk_icontains="AN"), True),
        (Q(), True),
    ],
)
def test_hand_written_rules_evaluate_as_the_database_would(q: Q, expected: bool) -> None:
    assert evaluate(q, ORDER, "sqlite") is expected
    assert evaluate(q, ORDER, "postgresql") is expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (Q(customer__name__lk_contains="A"), False),
        (~Q(customer__name__lk_contains="A"), True),
        (Q(customer__name="Ann"), False),
        (~Q(customer__name="Ann"), True),
        (Q(customer__credit_limit__gte=0), False),
        (Q(customer__name__isnull=True), True),
        (Q(customer=None), True),
        (Q(customer__isnull=False), False),
        (Q(customer__in=[2]), False),
    ],
)
def test_a_path_through_a_null_relation_reads_as_null(q: Q, expected: bool) -> None:
    assert evaluate(q, ORPHAN, "sqlite") is expected


@pytest.mark.parametrize(
    "q",
    [
        Q(status__contains="dr"),
        Q(status__iexact="DRAFT"),
        Q(created__year=2024),
        Q(total__gt=F("customer__credit_limit")),
        Q(Exists(Customer.objects.all())),
        Q(nope=1),
        Q(customer__email="a@x.test"),
        Q(total__gt=1.5),
        Q(total__gt="1.5"),
        Q(id__gt=Decimal("0.5")),
        Q(status=1),
        Q(created__gt=dt.datetime(2024, 1, 1)),
        Q(status__lk_contains=None),
        Q(total__gt=None),
        Q(status__isnull="yes"),
        Q(status__in="draft"),
        Q(status="draft", _connector=Q.XOR),
        ~Q(),
        Q(status="draft") | Q(status__regex="d.*"),
    ],
)
def test_shapes_that_python_cannot_answer_exactly_are_unevaluable(q: Q) -> None:
    with pytest.raises(Unevaluable):
        evaluate(q, ORDER, "sqlite")


def test_text_order_is_evaluable_on_sqlite_but_follows_the_collation_on_postgresql() -> None:
    assert evaluate(Q(status__lt="e"), ORDER, "sqlite") is True
    with pytest.raises(Unevaluable):
        evaluate(Q(status__lt="e"), ORDER, "postgresql")
    assert evaluate(Q(status__lk_lt="e"), ORDER, "postgresql") is True


def test_other_databases_are_unevaluable() -> None:
    with pytest.raises(Unevaluable):
        evaluate(Q(status="draft"), ORDER, "mysql")


def test_fold_lowers_ascii_only_on_sqlite() -> None:
    assert fold("ÄBC ΑΣ İ ẞ", "sqlite") == "Äbc ΑΣ İ ẞ"


def test_fold_lowers_each_code_point_on_postgresql_without_the_final_sigma_rule() -> None:
    assert fold("ÄBC ΑΣ İ ẞ", "postgresql") == "äbc ασ i ß"


def test_fold_for_an_unknown_database_is_unevaluable() -> None:
    with pytest.raises(Unevaluable):
        fold("a", "oracle")


@pytest.fixture
def order() -> SalesOrder:
    customer = Customer.objects.create(name="Ann", email="ann@x.test", credit_limit=Decimal("150.00"))
    Customer.objects.filter(pk=customer.pk).update(created=CREATED)
    return SalesOrder.objects.create(customer=customer, status="draft", total=Decimal("12.50"), created=CREATED)


@pytest.mark.django_db
def test_a_snapshot_nests_the_related_row_one_level_deep(order: SalesOrder) -> None:
    stored = SalesOrder.objects.get(pk=order.pk)
    customer = order.customer_id
    assert snapshot(stored) == {
        "pk": order.pk,
        "id": order.pk,
        "customer": {
            "pk": customer,
            "id": customer,
            "name": "Ann",
            "email": "ann@x.test",
            "credit_limit": Decimal("150.00"),
            "created": CREATED,
        },
        "status": "draft",
        "total": Decimal("12.50"),
        "created": CREATED,
    }


@pytest.mark.django_db
def test_a_snapshot_of_depth_zero_keeps_only_the_related_key(order: SalesOrder) -> None:
    record = snapshot(SalesOrder.objects.get(pk=order.pk), depth=0)
    assert record["customer"] == {"pk": order.customer_id, "id": order.customer_id}


def test_a_snapshot_types_loosely_assigned_values() -> None:
    product = Product(name="Desk", sku="D1", price="12.50", stock="3")
    record = snapshot(product)
    assert (record["price"], record["stock"]) == (Decimal("12.50"), 3)


@pytest.mark.django_db
@pytest.mark.usefixtures("gadgets")
def test_a_snapshot_maps_a_null_relation_to_none_and_leaves_json_fields_out() -> None:
    gadget = Gadget.objects.create(extra={"pk": 1})
    assert snapshot(Gadget.objects.get(pk=gadget.pk)) == {
        "pk": gadget.pk,
        "id": gadget.pk,
        "name": None,
        "weight": None,
        "count": None,
        "seen": None,
        "flag": None,
        "customer": None,
    }


def test_an_unevaluable_branch_is_never_hidden_by_a_true_branch_of_an_or() -> None:
    with pytest.raises(Unevaluable):
        evaluate(Q(status="draft") | Q(customer__email="a@x.test"), ORDER, "postgresql")
