"""Evaluates a ``Q`` against a row snapshot in Python, with the database's answer, or raises ``Unevaluable``.

Logic is two-valued: a lookup on NULL is false and a negation flips it, which is what Django's ``~Q`` produces
(it adds ``IS NOT NULL`` under negation for nullable columns and outer joins). One Django gap: under a negation,
a non-null column behind a nullable relation gets that guard only if the join is already outer when the lookup is
built, which depends on earlier conditions. ``compile_filter`` spells the NULL case out; a hand-written row rule
that negates through a nullable relation should too: ``Q(customer__name__isnull=True) | ~Q(customer__name="x")``.

A related row's visibility (``<relation>__in=VisibleKeys(…)``, from ``query.visibility``) is the rule it was built
from, tested on the related row's snapshot; a rule that snapshot cannot answer is ``Unevaluable``, as any other.
"""

from __future__ import annotations

import datetime as dt
import operator as op
import string
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import Model, Q

from likha_realtime.query.visibility import VisibleKeys

SUPPORTED_VENDORS = frozenset({"sqlite", "postgresql"})
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class Unevaluable(Exception):
    """The Q (or the snapshot) has a shape ``evaluate`` cannot answer exactly; treat the row as not matching."""


class _PostgresLower(dict[int, str]):
    """Per-code-point lowercase (simple case mapping, as glibc's towlower): no final-sigma rule, and İ → i."""

    def __missing__(self, code: int) -> str:
        lowered = "i" if code == 0x130 else chr(code).lower()
        self[code] = lowered
        return lowered


_POSTGRES_LOWER = _PostgresLower()


def fold(text: str, vendor: str) -> str:
    """``text`` as the database's ``LOWER`` gives it.

    SQLite folds ASCII letters only (unless the ICU extension is loaded). PostgreSQL folds by the ctype of the
    database locale: with a glibc UTF-8 locale (C.UTF-8, en_US.UTF-8) every code point maps to its simple Unicode
    lowercase, which is what this mirrors. A "C"/"POSIX" ctype folds ASCII only, and an ICU locale applies the
    full mappings (final sigma, İ → i̇); such databases can disagree on non-ASCII text with ``lk_icontains``.
    """
    if vendor == "sqlite":
        return text.translate(_ASCII_LOWER)
    if vendor == "postgresql":
        return text.translate(_POSTGRES_LOWER)
    raise Unevaluable(f"No case folding is known for the {vendor!r} database.")


def evaluate(q: Q, snapshot: dict[str, Any], vendor: str) -> bool:
    """Whether the row of ``snapshot`` satisfies ``q`` on a ``vendor`` database (``connection.vendor``)."""
    if vendor not in SUPPORTED_VENDORS:
        raise Unevaluable(f"Rows cannot be evaluated for the {vendor!r} database.")
    if not isinstance(snapshot, dict):
        raise Unevaluable("A snapshot is a dict of field values.")
    return _node(q, snapshot, vendor)


def _node(q: Any, record: dict[str, Any], vendor: str) -> bool:
    if not isinstance(q, Q) or q.connector not in (Q.AND, Q.OR):
        raise Unevaluable(f"Cannot evaluate {type(q).__name__} {q!r}.")
    if not q.children:
        if q.negated:
            raise Unevaluable("Cannot evaluate a negated empty Q.")
        return True
    results = [_child(child, record, vendor) for child in q.children]  # all of them: any may be unevaluable
    matched = all(results) if q.connector == Q.AND else any(results)
    return not matched if q.negated else matched


def _child(child: Any, record: dict[str, Any], vendor: str) -> bool:
    if isinstance(child, Q):
        return _node(child, record, vendor)
    if not (isinstance(child, tuple) and len(child) == 2 and isinstance(child[0], str)):
        raise Unevaluable(f"Cannot evaluate the condition {child!r}.")
    path, rhs = child
    value, lookup = _resolve(record, path.split("__"))
    if isinstance(rhs, VisibleKeys):
        return _visible(value, lookup, rhs, vendor)
    if isinstance(value, dict) and lookup != "isnull":  # a relation compared directly: its primary key
        if "pk" not in value:
            raise Unevaluable(f"The snapshot of {path!r} has no primary key.")
        value = value["pk"]
        rhs = _keys(rhs)
    compare = _LOOKUPS.get(lookup)
    if compare is None:
        raise Unevaluable(f"Cannot evaluate the lookup {lookup!r} of {path!r}.")
    return compare(value, rhs, vendor)


def _visible(value: Any, lookup: str, rhs: VisibleKeys, vendor: str) -> bool:
    """Whether the related row ``value`` (its snapshot, or None) is among the rows ``rhs``'s rule shows."""
    if lookup != "in" or not rhs.evaluable:
        raise Unevaluable(f"Cannot evaluate the lookup {lookup!r} of visible rows.")
    if value is None:
        return False  # NULL IN (…) never holds
    if not _is_record(value):
        raise Unevaluable("The snapshot of a related row is not a row.")
    return _node(rhs.rule, value, vendor)


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and "pk" in value


def _resolve(record: dict[str, Any], parts: list[str]) -> tuple[Any, str]:
    """The value at the field path in ``parts`` and the lookup that follows it (``exact`` when none)."""
    value: Any = record
    index = 0
    while index < len(parts) and (index == 0 or _is_record(value)) and parts[index] in value:
        value = value[parts[index]]
        index += 1
    rest = parts[index:]
    if index == 0:
        raise Unevaluable(f"The snapshot has no field {parts[0]!r}.")
    if value is None and rest:  # through a NULL relation every field reads as NULL
        return None, rest[-1] if rest[-1] in _LOOKUPS else "exact"
    if len(rest) > 1:
        raise Unevaluable(f"Cannot follow {'__'.join(parts)!r} in the snapshot.")
    return value, rest[0] if rest else "exact"


def _keys(rhs: Any) -> Any:
    """Model instances on the right of a relation lookup stand for their primary keys."""
    if isinstance(rhs, Model):
        return rhs.pk
    if isinstance(rhs, list | tuple):
        return type(rhs)(_keys(item) for item in rhs)
    return rhs


def _check(lhs: Any, rhs: Any, vendor: str, *, ordered: bool = False) -> None:
    """Raises ``Unevaluable`` unless comparing ``lhs`` with ``rhs`` in Python gives the database's answer."""
    if hasattr(rhs, "resolve_expression"):
        raise Unevaluable(f"Cannot evaluate the expression {rhs!r}.")
    if not _comparable(lhs, rhs):
        raise Unevaluable(f"Cannot compare {type(lhs).__name__} with {type(rhs).__name__}.")
    if ordered and isinstance(lhs, str) and vendor != "sqlite":
        raise Unevaluable("Text order follows the database collation; use the lk_lt/lk_gt lookups.")


def _comparable(lhs: Any, rhs: Any) -> bool:
    if isinstance(lhs, bool) or isinstance(rhs, bool):
        return isinstance(lhs, bool) and isinstance(rhs, bool)
    if isinstance(lhs, Decimal):
        return isinstance(rhs, Decimal | int)
    if isinstance(lhs, int):
        return isinstance(rhs, int)
    if isinstance(lhs, float):
        return isinstance(rhs, float | int)
    if isinstance(lhs, dt.datetime):
        return isinstance(rhs, dt.datetime) and (lhs.tzinfo is None) == (rhs.tzinfo is None)
    if isinstance(lhs, dt.date):
        return isinstance(rhs, dt.date) and not isinstance(rhs, dt.datetime)
    if isinstance(lhs, str):
        return isinstance(rhs, str)
    return type(lhs) is type(rhs) and isinstance(lhs, dt.time | UUID)


def _exact(lhs: Any, rhs: Any, vendor: str) -> bool:
    if rhs is None:
        return lhs is None
    if lhs is None:
        return False
    _check(lhs, rhs, vendor)
    return bool(lhs == rhs)


def _in(lhs: Any, rhs: Any, vendor: str) -> bool:
    if not isinstance(rhs, list | tuple | set | frozenset):
        raise Unevaluable(f"Cannot evaluate __in with {type(rhs).__name__}.")
    values = [value for value in rhs if value is not None]  # Django drops None from IN lists
    if lhs is None:
        for value in values:
            if hasattr(value, "resolve_expression"):
                raise Unevaluable(f"Cannot evaluate the expression {value!r}.")
        return False
    for value in values:
        _check(lhs, value, vendor)
    return any(lhs == value for value in values)


def _isnull(lhs: Any, rhs: Any, vendor: str) -> bool:
    if not isinstance(rhs, bool):
        raise Unevaluable("__isnull takes True or False.")
    return (lhs is None) == rhs


def _ordered(compare: Callable[[Any, Any], bool], *, text: bool = False) -> Callable[[Any, Any, str], bool]:
    def lookup(lhs: Any, rhs: Any, vendor: str) -> bool:
        if rhs is None or (text and not isinstance(rhs, str)):
            raise Unevaluable("A comparison needs a value of the field's type.")
        if lhs is None:
            return False
        _check(lhs, rhs, "sqlite" if text else vendor, ordered=True)  # lk_* order by code point everywhere
        return bool(compare(lhs, rhs))

    return lookup


def _range(lhs: Any, rhs: Any, vendor: str) -> bool:
    if not isinstance(rhs, list | tuple) or len(rhs) != 2:
        raise Unevaluable("__range takes two values.")
    low, high = _GTE(lhs, rhs[0], vendor), _LTE(lhs, rhs[1], vendor)  # both: either may be unevaluable
    return low and high


_GTE = _ordered(op.ge)
_LTE = _ordered(op.le)


def _text(compare: Callable[[str, str, str], bool]) -> Callable[[Any, Any, str], bool]:
    def lookup(lhs: Any, rhs: Any, vendor: str) -> bool:
        if not isinstance(rhs, str):
            raise Unevaluable("Text lookups take a string.")
        if lhs is None:
            return False
        if not isinstance(lhs, str):
            raise Unevaluable(f"Text lookups apply to text, not {type(lhs).__name__}.")
        return compare(lhs, rhs, vendor)

    return lookup


_LOOKUPS: dict[str, Callable[[Any, Any, str], bool]] = {
    "exact": _exact,
    "in": _in,
    "isnull": _isnull,
    "gt": _ordered(op.gt),
    "gte": _GTE,
    "lt": _ordered(op.lt),
    "lte": _LTE,
    "range": _range,
    "lk_contains": _text(lambda lhs, rhs, vendor: rhs in lhs),
    "lk_icontains": _text(lambda lhs, rhs, vendor: fold(rhs, vendor) in fold(lhs, vendor)),
    "lk_startswith": _text(lambda lhs, rhs, vendor: lhs.startswith(rhs)),
    "lk_endswith": _text(lambda lhs, rhs, vendor: lhs.endswith(rhs)),
    "lk_lt": _ordered(op.lt, text=True),
    "lk_lte": _ordered(op.le, text=True),
    "lk_gt": _ordered(op.gt, text=True),
    "lk_gte": _ordered(op.ge, text=True),
}
