"""compile_filter: the Q of each operator, relation paths, the guard, every error; the lk_* lookups on the database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import Field, Model, Q

from erp_demo.models import Customer, Product, SalesOrder
from likha_realtime.query import compile_filter, evaluate, fold, snapshot
from likha_realtime.query.filters import OPERATORS, Guard
from likha_realtime.wire.errors import Forbidden, InvalidQuery
from tests.likha_realtime.query.nullable import Gadget

UTC = dt.UTC
NEW_YEAR = dt.datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"name": {"_eq": "Desk"}}, Q(name__exact="Desk")),
        ({"name": {"_neq": "Desk"}}, ~Q(name__exact="Desk")),
        ({"name": {"_eq": None}}, Q(name__isnull=True)),
        ({"name": {"_neq": None}}, Q(name__isnull=False)),
        ({"name": {"_null": True}}, Q(name__isnull=True)),
        ({"name": {"_nnull": True}}, Q(name__isnull=False)),
        ({"name": {"_nnull": False}}, Q(name__isnull=True)),
        ({"price": {"_gt": "9.99", "_lte": 100}}, Q(price__gt=Decimal("9.99")) & Q(price__lte=Decimal("100"))),
        ({"price": {"_gte": 0.5}}, Q(price__gte=Decimal("0.5"))),
        ({"stock": {"_lt": "3"}}, Q(stock__lt=3)),
        ({"stock": {"_in": [1, "2", 3.0]}}, Q(stock__in=[1, 2, 3])),
        ({"stock": {"_nin": []}}, ~Q(stock__in=[])),
        ({"price": {"_between": ["1", "2.50"]}}, Q(price__range=(Decimal("1"), Decimal("2.50")))),
        ({"name": {"_lt": "M"}}, Q(name__lk_lt="M")),
        ({"name": {"_gte": "M"}}, Q(name__lk_gte="M")),
        ({"name": {"_between": ["a", "m"]}}, Q(name__lk_gte="a") & Q(name__lk_lte="m")),
        ({"name": {"_contains": "Ab"}}, Q(name__lk_contains="Ab")),
        ({"name": {"_ncontains": "Ab"}}, ~Q(name__lk_contains="Ab")),
        ({"name": {"_icontains": "ab"}}, Q(name__lk_icontains="ab")),
        ({"name": {"_starts_with": "De"}}, Q(name__lk_startswith="De")),
        ({"name": {"_ends_with": "sk"}}, Q(name__lk_endswith="sk")),
        ({"updated": {"_gte": "2024-01-01T02:00:00+02:00"}}, Q(updated__gte=NEW_YEAR)),
        ({"updated": {"_gte": "2024-01-01"}}, Q(updated__gte=NEW_YEAR)),
        ({"updated": {"_gte": "2024-01-01T00:00:00"}}, Q(updated__gte=NEW_YEAR)),
        ({"pk": {"_eq": 3}}, Q(id__exact=3)),
        ({"id": {"_eq": "3"}}, Q(id__exact=3)),
        (
            {"_or": [{"status": {"_eq": "draft"}}, {"stock": {"_lte": 0}}]},
            Q(status__exact="draft") | Q(stock__lte=0),
        ),
        (
            {"_and": [{"status": {"_eq": "draft"}}, {"stock": {"_lte": 0}}], "name": {"_eq": "x"}},
            Q(status__exact="draft") & Q(stock__lte=0) & Q(name__exact="x"),
        ),
    ],
)
def test_each_operator_compiles_to_the_documented_lookup(raw: dict[str, Any], expected: Q) -> None:
    assert compile_filter(Product, raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"customer": {"name": {"_eq": "Ann"}}}, Q(customer__name__exact="Ann")),
        ({"customer.name": {"_eq": "Ann"}}, Q(customer__name__exact="Ann")),
        ({"customer": {"_eq": "5"}}, Q(customer__id__exact=5)),
        ({"customer": {"_null": True}}, Q(customer__id__isnull=True)),
        ({"customer.pk": {"_in": [1, 2]}}, Q(customer__id__in=[1, 2])),
        (
            {"customer": {"name": {"_neq": "Ann"}}},
            Q(customer__name__isnull=True) | ~Q(customer__name__exact="Ann"),
        ),
        (
            {"customer": {"_neq": 5}},
            Q(customer__id__isnull=True) | ~Q(customer__id__exact=5),
        ),
        (
            {"customer": {"_or": [{"name": {"_eq": "Ann"}}, {"email": {"_ends_with": "@x.test"}}]}},
            Q(customer__name__exact="Ann") | Q(customer__email__lk_endswith="@x.test"),
        ),
        (
            {"customer": {"_gt": 1, "credit_limit": {"_gte": 100}}},
            Q(customer__id__gt=1) & Q(customer__credit_limit__gte=Decimal("100")),
        ),
    ],
)
def test_relations_compile_nested_and_dotted_alike(raw: dict[str, Any], expected: Q) -> None:
    assert compile_filter(SalesOrder, raw) == expected


def test_an_empty_filter_compiles_to_an_empty_q() -> None:
    assert compile_filter(Product, {}) == Q()


OPERATOR_LIST = ", ".join(OPERATORS)
PRICE = "a number with at most 10 digits before the point and 2 after it"
INT32 = "an integer between -2147483648 and 2147483647"
INT64 = "an integer between -9223372036854775808 and 9223372036854775807"
ISO = 'an ISO 8601 date-time such as "2024-05-01T12:30:00Z"'
TEXT = "a string without NUL characters"
BETWEEN = '"_between" on "price" expects a list of two values, [low, high].'


def invalid(field: str, operator: str, expected: str, received: str) -> str:
    return f'Invalid value for "{field}" with "{operator}": expected {expected}, received {received}.'


@pytest.mark.parametrize(
    ("model", "raw", "message"),
    [
        (Product, [], '"filter" must be an object.'),
        (Product, {"nope": {"_eq": 1}}, 'Unknown field "nope" on model "product".'),
        (SalesOrder, {"customer.nope": {"_eq": 1}}, 'Unknown field "nope" on model "customer".'),
        (SalesOrder, {"customer": {"nope": {"_eq": 1}}}, 'Unknown field "nope" on model "customer".'),
        (Product, {"name": {"_like": "x"}}, f'Unknown operator "_like" on "name"; expected one of {OPERATOR_LIST}.'),
        (Product, {"name": {"eq": "x"}}, f'Unknown operator "eq" on "name"; expected one of {OPERATOR_LIST}.'),
        (
            SalesOrder,
            {"customer": {"_like": 1}},
            f'Unknown operator "_like" on "customer"; expected one of {OPERATOR_LIST}.',
        ),
        (Product, {"_eq": 1}, 'Operator "_eq" must be applied to a field, as in {"name": {"_eq": …}}.'),
        (Product, {"name": "Desk"}, 'The filter on "name" must be an object of operators, such as {"_eq": …}.'),
        (Product, {"name": {}}, 'The filter on "name" must be an object of operators, such as {"_eq": …}.'),
        (SalesOrder, {"customer": {}}, 'The filter on "customer" must be an object of operators, such as {"_eq": …}.'),
        (Product, {"_or": []}, '"_or" must be a non-empty list of non-empty filter objects.'),
        (Product, {"_and": [{}]}, '"_and" must be a non-empty list of non-empty filter objects.'),
        (Product, {"_and": {"name": {"_eq": "x"}}}, '"_and" must be a non-empty list of non-empty filter objects.'),
        (Product, {"name.first": {"_eq": "x"}}, '"name" is not a relation, so "name.…" cannot be filtered.'),
        (SalesOrder, {"customer.": {"_eq": 1}}, 'Invalid field path "customer." in "filter".'),
        (SalesOrder, {".name": {"_eq": 1}}, 'Invalid field path ".name" in "filter".'),
        (
            Customer,
            {"orders": {"_null": True}},
            'Filtering on "orders" is not supported: only fields and forward relations are.',
        ),
        (Gadget, {"extra": {"_null": True}}, 'Filtering on "extra" is not supported.'),
        (Product, {"price": {"_gt": "abc"}}, invalid("price", "_gt", PRICE, '"abc"')),
        (Product, {"price": {"_eq": "1.005"}}, invalid("price", "_eq", PRICE, '"1.005"')),
        (Product, {"price": {"_eq": 1e10}}, invalid("price", "_eq", PRICE, "10000000000.0")),
        (Product, {"price": {"_eq": True}}, invalid("price", "_eq", PRICE, "true")),
        (Product, {"stock": {"_lt": 2.5}}, invalid("stock", "_lt", INT32, "2.5")),
        (Product, {"stock": {"_lt": 3000000000}}, invalid("stock", "_lt", INT32, "3000000000")),
        (Product, {"id": {"_eq": "one"}}, invalid("id", "_eq", INT64, '"one"')),
        (Product, {"updated": {"_gt": "yesterday"}}, invalid("updated", "_gt", ISO, '"yesterday"')),
        (Product, {"updated": {"_gt": "2024-02-30"}}, invalid("updated", "_gt", ISO, '"2024-02-30"')),
        (
            Product,
            {"updated": {"_gt": "0001-01-01T00:00:00+05:00"}},
            invalid("updated", "_gt", ISO, '"0001-01-01T00:00:00+05:00"'),
        ),
        (Product, {"name": {"_eq": 5}}, invalid("name", "_eq", TEXT, "5")),
        (Product, {"name": {"_eq": "a\x00b"}}, invalid("name", "_eq", TEXT, '"a\\u0000b"')),
        (Gadget, {"flag": {"_eq": 1}}, invalid("flag", "_eq", "true or false", "1")),
        (Product, {"stock": {"_in": 1}}, '"_in" on "stock" expects a list of at most 1000 values.'),
        (Product, {"stock": {"_nin": list(range(1001))}}, '"_nin" on "stock" expects a list of at most 1000 values.'),
        (Product, {"stock": {"_in": [1, None]}}, '"_in" on "stock" expects a value, received null.'),
        (Product, {"price": {"_between": [1, 2, 3]}}, BETWEEN),
        (Product, {"price": {"_between": [1, None]}}, '"_between" on "price" expects a value, received null.'),
        (Product, {"name": {"_null": "true"}}, '"_null" on "name" expects true or false.'),
        (Product, {"price": {"_gt": None}}, '"_gt" on "price" expects a value, received null.'),
        (Product, {"price": {"_contains": "1"}}, '"_contains" applies to text fields only, and "price" is not one.'),
        (
            SalesOrder,
            {"customer": {"_icontains": "1"}},
            '"_icontains" applies to text fields only, and "customer" is not one.',
        ),
        (Product, {"name": {"_contains": 1}}, '"_contains" on "name" expects a string.'),
        (Product, {"name": {"_starts_with": None}}, '"_starts_with" on "name" expects a string.'),
    ],
)
def test_an_invalid_filter_is_refused_with_an_exact_message(model: type[Model], raw: Any, message: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        compile_filter(model, raw)
    assert caught.value.message == message


def test_a_filter_nested_deeper_than_sixteen_levels_is_refused() -> None:
    raw: dict[str, Any] = {"name": {"_eq": "x"}}
    for _ in range(17):
        raw = {"_and": [raw]}
    with pytest.raises(InvalidQuery) as caught:
        compile_filter(Product, raw)
    assert caught.value.message == '"filter" is nested too deeply (at most 16 levels).'


class Recorder(Guard):
    """A guard that records its calls and forbids the fields in ``forbidden``."""

    def __init__(self, *forbidden: tuple[type[Model], str]) -> None:
        self.calls: list[tuple[str, str]] = []
        self.forbidden = set(forbidden)

    def vet(self, model: type[Model], name: str) -> None:
        self.calls.append((model.__name__, name))
        if (model, name) in self.forbidden:
            raise Forbidden(f'You cannot filter on "{name}".')


@pytest.mark.parametrize(
    "raw",
    [
        {"customer.name": {"_eq": "Ann"}, "status": {"_eq": "draft"}},
        {"customer": {"name": {"_eq": "Ann"}}, "status": {"_eq": "draft"}},
        {"_or": [{"customer": {"name": {"_eq": "Ann"}}}, {"status": {"_eq": "draft"}}]},
    ],
)
def test_the_guard_sees_the_relation_then_each_related_field_then_the_next_field(raw: dict[str, Any]) -> None:
    guard = Recorder()
    compile_filter(SalesOrder, raw, guard=guard)
    assert guard.calls == [("SalesOrder", "customer"), ("Customer", "name"), ("SalesOrder", "status")]


def test_the_guard_sees_the_primary_key_by_its_field_name() -> None:
    guard = Recorder()
    compile_filter(SalesOrder, {"pk": {"_eq": 1}, "customer.pk": {"_eq": 2}}, guard=guard)
    assert guard.calls == [("SalesOrder", "id"), ("SalesOrder", "customer"), ("Customer", "id")]


def test_a_relation_compared_by_key_is_guarded_as_the_relation_only() -> None:
    guard = Recorder()
    compile_filter(SalesOrder, {"customer": {"_eq": 2}}, guard=guard)
    assert guard.calls == [("SalesOrder", "customer")]


@pytest.mark.parametrize(
    "raw",
    [
        {"customer.email": {"_eq": "a@x.test"}},
        {"customer": {"email": {"_eq": "a@x.test"}}},
        {"_or": [{"status": {"_eq": "draft"}}, {"customer": {"_and": [{"email": {"_ends_with": "x"}}]}}]},
        {"customer.email": {"_eq": 5}},
        {"customer.email": {"_nope": 5}},
    ],
)
def test_a_forbidden_related_field_is_forbidden_before_its_value_or_operator_is_checked(raw: dict[str, Any]) -> None:
    with pytest.raises(Forbidden) as caught:
        compile_filter(SalesOrder, raw, guard=Recorder((Customer, "email")))
    assert caught.value.message == 'You cannot filter on "email".'


def test_a_forbidden_relation_stops_the_walk_before_the_related_model() -> None:
    guard = Recorder((SalesOrder, "customer"))
    with pytest.raises(Forbidden):
        compile_filter(SalesOrder, {"customer": {"name": {"_eq": "Ann"}}}, guard=guard)
    assert guard.calls == [("SalesOrder", "customer")]


def test_the_guard_runs_before_the_unknown_field_check_so_unknown_and_unreadable_look_alike() -> None:
    guard = Recorder((Product, "secret"))
    with pytest.raises(Forbidden):
        compile_filter(Product, {"secret": {"_eq": 1}}, guard=guard)


class Walled(Recorder):
    """A guard that lets the filter follow no relation; paths through fields are refused with ``refusal``."""

    def __init__(self, refusal: Exception | None = None) -> None:
        super().__init__()
        self.refusal = refusal
        self.paths: list[tuple[str, str, str]] = []

    def follows(self, model: type[Model], relation: Field) -> bool:
        return False

    def refuse_path(self, model: type[Model], key: str, label: str) -> Exception | None:
        self.paths.append((model.__name__, key, label))
        return self.refusal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"customer": {"_eq": "5"}}, Q(customer__id__exact=5)),
        ({"customer": {"_neq": 5}}, Q(customer__id__isnull=True) | ~Q(customer__id__exact=5)),
        ({"customer": {"_null": True}}, Q(customer__id__isnull=True)),
    ],
)
def test_a_relation_the_guard_does_not_follow_is_still_compared_by_its_key(raw: dict[str, Any], expected: Q) -> None:
    assert compile_filter(SalesOrder, raw, guard=Walled()) == expected


@pytest.mark.parametrize(
    ("model", "raw", "message"),
    [
        (SalesOrder, {"customer": {"name": {"_eq": "Ann"}}}, 'Unknown operator "name" on "customer"'),
        (Product, {"name": {"first": {"_eq": "Ann"}}}, 'Unknown operator "first" on "name"'),
        (SalesOrder, {"customer": {"_and": [{"name": {"_eq": "Ann"}}]}}, 'Unknown operator "_and" on "customer"'),
        (Product, {"name": {"_and": [{"first": {"_eq": "Ann"}}]}}, 'Unknown operator "_and" on "name"'),
    ],
)
def test_a_relation_the_guard_does_not_follow_reads_as_a_field_that_is_not_a_relation(
    model: type[Model], raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        compile_filter(model, raw, guard=Walled())
    assert caught.value.message == f"{message}; expected one of {OPERATOR_LIST}."


@pytest.mark.parametrize(
    ("model", "raw", "refused"),
    [
        (SalesOrder, {"customer.name": {"_eq": "Ann"}}, ("SalesOrder", "customer.name", "customer.name")),
        (Product, {"name.first": {"_eq": "Ann"}}, ("Product", "name.first", "name.first")),
    ],
)
def test_a_path_through_a_field_the_guard_does_not_follow_gets_the_guards_refusal(
    model: type[Model], raw: dict[str, Any], refused: tuple[str, str, str]
) -> None:
    guard = Walled(Forbidden("No path."))
    with pytest.raises(Forbidden) as caught:
        compile_filter(model, raw, guard=guard)
    assert (caught.value.message, guard.paths) == ("No path.", [refused])


def test_a_path_through_an_unfollowed_relation_is_the_compilers_own_error_when_the_guard_gives_none() -> None:
    with pytest.raises(InvalidQuery) as caught:
        compile_filter(SalesOrder, {"customer.name": {"_eq": "Ann"}}, guard=Walled())
    assert caught.value.message == '"customer" is not a relation, so "customer.…" cannot be filtered.'


class OneLevel(Walled):
    """Follows the relations of sales orders only."""

    def follows(self, model: type[Model], relation: Field) -> bool:
        return model is SalesOrder


def test_a_refused_path_inside_a_followed_relation_is_asked_in_the_related_model() -> None:
    guard = OneLevel(Forbidden("No path."))
    with pytest.raises(Forbidden):
        compile_filter(SalesOrder, {"customer": {"email.domain": {"_eq": "x"}}}, guard=guard)
    assert guard.paths == [("Customer", "email.domain", "customer.email.domain")]


def rows_of(model: type[Model], q: Q) -> set[int]:
    return set(model.objects.filter(q).values_list("pk", flat=True))


def evaluated(model: type[Model], q: Q) -> set[int]:
    return {row.pk for row in model.objects.all() if evaluate(q, snapshot(row), connection.vendor)}


NAMES = ["Abc", "abc", "ÄBC", "äbc", "", "x"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"_contains": "b"}, {"sqlite": {"Abc", "abc", "äbc"}}),
        ({"_contains": "B"}, {"sqlite": {"ÄBC"}}),
        ({"_contains": ""}, {"sqlite": set(NAMES)}),
        ({"_ncontains": "b"}, {"sqlite": {"ÄBC", "", "x"}}),
        ({"_icontains": "B"}, {"sqlite": {"Abc", "abc", "ÄBC", "äbc"}}),
        ({"_icontains": "ä"}, {"sqlite": {"äbc"}, "postgresql": {"ÄBC", "äbc"}}),
        ({"_icontains": "Ä"}, {"sqlite": {"ÄBC"}, "postgresql": {"ÄBC", "äbc"}}),
        ({"_icontains": ""}, {"sqlite": set(NAMES)}),
        ({"_starts_with": "ab"}, {"sqlite": {"abc"}}),
        ({"_starts_with": ""}, {"sqlite": set(NAMES)}),
        ({"_starts_with": "abcd"}, {"sqlite": set()}),
        ({"_ends_with": "bc"}, {"sqlite": {"Abc", "abc", "äbc"}}),
        ({"_ends_with": ""}, {"sqlite": set(NAMES)}),
        ({"_ends_with": "xabc"}, {"sqlite": set()}),
        ({"_ends_with": "zzzzabc"}, {"sqlite": set()}),
        ({"_lt": "a"}, {"sqlite": {"", "Abc"}}),
        ({"_gte": "Ä"}, {"sqlite": {"ÄBC", "äbc"}}),
        ({"_between": ["B", "x"]}, {"sqlite": {"abc", "x"}}),
        ({"_eq": "abc"}, {"sqlite": {"abc"}}),
        ({"_eq": ""}, {"sqlite": {""}}),
        ({"_in": ["ABC", "äbc"]}, {"sqlite": {"äbc"}}),
    ],
)
def test_text_operators_mean_the_same_on_every_database(raw: dict[str, Any], expected: dict[str, set[str]]) -> None:
    by_name = {Product.objects.create(name=name, sku=f"s{index}").pk: name for index, name in enumerate(NAMES)}
    q = compile_filter(Product, {"name": raw})
    names = expected.get(connection.vendor, expected["sqlite"])
    assert {by_name[pk] for pk in rows_of(Product, q)} == names
    assert {by_name[pk] for pk in evaluated(Product, q)} == names


@pytest.mark.django_db
def test_fold_matches_the_database_lower_for_every_code_point() -> None:
    text = "".join(chr(code) for code in range(1, 0x110000) if not 0xD800 <= code <= 0xDFFF)
    with connection.cursor() as cursor:
        cursor.execute("SELECT LOWER(%s)", [text])
        lowered = cursor.fetchone()[0]
    folded = fold(text, connection.vendor)
    mismatches = [f"U+{ord(a):04X}" for a, b, c in zip(text, lowered, folded, strict=True) if b != c]
    assert mismatches == []


@pytest.mark.django_db
@pytest.mark.usefixtures("gadgets")
def test_a_negation_through_a_null_relation_matches_whatever_came_before_it_in_an_or() -> None:
    customer = Customer.objects.create(name="Ann", email="ann@x.test")
    gadget = Gadget.objects.create()
    raw = {
        "_or": [
            {"count": {"_eq": -1}},
            {"customer": {"_eq": customer.pk, "_neq": customer.pk}},
            {"customer": {"email": {"_ncontains": ""}}},
        ]
    }
    q = compile_filter(Gadget, raw)
    assert rows_of(Gadget, q) == {gadget.pk}
    assert evaluated(Gadget, q) == {gadget.pk}


@pytest.mark.django_db
@pytest.mark.usefixtures("gadgets")
@pytest.mark.parametrize(
    ("raw", "matches"),
    [
        ({"name": {"_neq": "a"}}, True),
        ({"name": {"_nin": ["a"]}}, True),
        ({"name": {"_ncontains": "a"}}, True),
        ({"name": {"_lt": "a"}}, False),
        ({"name": {"_in": ["a"]}}, False),
        ({"name": {"_contains": ""}}, False),
        ({"name": {"_eq": None}}, True),
        ({"weight": {"_between": [0, 10]}}, False),
        ({"count": {"_gte": -2147483648}}, False),
        ({"customer": {"name": {"_neq": "Ann"}}}, True),
        ({"customer": {"name": {"_eq": "Ann"}}}, False),
        ({"customer.name": {"_null": True}}, True),
        ({"customer": {"_nin": [1]}}, True),
        ({"_or": [{"customer": {"name": {"_eq": "Ann"}}}, {"flag": {"_null": True}}]}, True),
    ],
)
def test_null_values_match_only_null_checks_and_negations(raw: dict[str, Any], matches: bool) -> None:
    gadget = Gadget.objects.create()
    q = compile_filter(Gadget, raw)
    assert rows_of(Gadget, q) == ({gadget.pk} if matches else set())
    assert evaluated(Gadget, q) == ({gadget.pk} if matches else set())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"price": {"_eq": "9.99"}}, {"9.99"}),
        ({"price": {"_gt": 9.99}}, {"10.00", "1234567.89"}),
        ({"price": {"_in": ["10", 0.5]}}, {"0.50", "10.00"}),
        ({"price": {"_between": [0.5, "10"]}}, {"0.50", "9.99", "10.00"}),
        ({"price": {"_lt": "0.01"}}, {"0.00"}),
    ],
)
def test_decimal_filters_compare_exactly_on_every_database(raw: dict[str, Any], expected: set[str]) -> None:
    for index, price in enumerate(["0.00", "0.50", "9.99", "10.00", "1234567.89"]):
        Product.objects.create(name="p", sku=f"d{index}", price=Decimal(price))
    q = compile_filter(Product, raw)
    prices = {str(price) for price in Product.objects.filter(q).values_list("price", flat=True)}
    assert prices == expected
    assert {str(Product.objects.get(pk=pk).price) for pk in evaluated(Product, q)} == expected
