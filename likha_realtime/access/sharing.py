"""What subscriptions may share, derived from their compiled read plans: one event re-read serves a batch.

Two subscriptions share a re-read only when their reads are the same read: the same SQL with the same parameters
(the row rule and filter on the subscribed collection, the columns and relations read), the same shaping of rows
into frames, and the same row rules on every related collection that the frames show. The key is taken from what
the plan actually compiles to, not from a list of rules, so a rule added to reads later is covered without being
named here; ``tests/likha_realtime/access/test_sharing.py`` fails when ``ReadPlan`` gains a field this module does
not account for.

A value that cannot be compared safely (an unhashable SQL parameter, an expression in a rule) makes the key unique:
such a subscription is read alone, never with someone else's rights.
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Hashable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.db.models import Q, QuerySet

from likha_realtime.access import reads
from likha_realtime.query.visibility import VisibleKeys

# Every field of ``ReadPlan`` and how the key covers it (checked by the tests).
COVERED = {
    "collection": "its name",
    "principal": "not compared: what it causes (rules, readable fields) is compiled into the other fields",
    "query": "fields, filter and sort are compiled into paths, output, condition and order",
    "condition": "the read's SQL",
    "paths": "the read's SQL",
    "output": "compared as is",
    "nested_rules": "each related collection's rule as SQL",
    "order": "the read's SQL",
}

_PLAIN = (str, int, float, bool, decimal.Decimal, date, datetime, time, timedelta, uuid.UUID, bytes, type(None))


class _Unique:
    """Equal only to itself: a part of a key that must never match another subscription's."""

    __slots__ = ()


def plan_key(plan: reads.ReadPlan) -> Hashable:
    """Equal for two plans exactly when an event re-read under one gives what it gives under the other (sync)."""
    queryset = reads.scoped(plan).order_by(*plan.order).values(*plan.paths)
    nested = tuple(
        (relation, target.name, _compiled(target.model._default_manager.filter(rule).values("pk")))
        for relation, (target, rule) in sorted(plan.nested_rules.items())
    )
    return (plan.collection.name, _compiled(queryset), tuple(plan.output), nested)


def _compiled(queryset: QuerySet[Any]) -> Hashable:
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:  # a condition that no row can meet: every such read gives nothing
        return ("<no rows>",)
    return (sql, tuple(_param(value) for value in params))


def _param(value: Any) -> Hashable:
    """A SQL parameter with its type: ``1``, ``1.0``, ``True`` and ``"1"`` are different parameters."""
    if isinstance(value, _PLAIN):
        return (type(value).__qualname__, value)
    if isinstance(value, list | tuple):
        return (type(value).__qualname__, tuple(_param(item) for item in value))
    return _Unique()


def watched_fields(plan: reads.ReadPlan) -> frozenset[str] | None:
    """The fields of the subscribed collection whose change can change what this plan sends for an update: the
    ones it shows (a relation by its key) and the ones its row rule and filter test. ``None``: not known (a rule
    with an expression), so any change counts."""
    tested = _tested_fields(plan.condition)
    if tested is None:
        return None
    heads = {path.split("__", 1)[0] for path in plan.paths} | tested
    return frozenset(_field_name(plan, head) for head in heads)


def _field_name(plan: reads.ReadPlan, name: str) -> str:
    """A field's name for a name or column attribute (``customer_id`` is ``customer``), as events name them."""
    try:
        return plan.collection.model._meta.get_field(name).name
    except FieldDoesNotExist:
        return name  # ``pk``, or a reverse relation's lookup


def _tested_fields(condition: Q) -> set[str] | None:
    names: set[str] = set()
    for child in condition.children:
        if isinstance(child, Q):
            nested = _tested_fields(child)
            if nested is None:
                return None
            names |= nested
        elif isinstance(child, tuple) and len(child) == 2 and isinstance(child[0], str):
            if isinstance(child[1], VisibleKeys):  # a related row's visibility: tests the relation's key only
                names.add(child[0].split("__", 1)[0])
                continue
            if hasattr(child[1], "resolve_expression"):  # F(), a subquery: it may read other fields
                return None
            names.add(child[0].split("__", 1)[0])
        else:  # an expression used as a condition
            return None
    return names
