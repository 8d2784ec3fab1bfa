"""Snapshots a model instance as a dict of typed field values, the row shape that ``evaluate`` reads."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models


def snapshot(instance: models.Model, depth: int = 1) -> dict[str, Any]:
    """``{"pk": …, <field name>: value}`` for the concrete fields of ``instance``.

    A forward relation maps to the snapshot of the related row (one level less deep), to ``{"pk": key, <pk name>:
    key}`` at depth 0, or to None when it is NULL. JSON fields are left out: their key lookups are not evaluable.
    Take snapshots of rows as stored (re-read after the write), so that values are the database's.
    """
    record: dict[str, Any] = {"pk": instance.pk}
    for field in instance._meta.concrete_fields:
        if isinstance(field, models.JSONField):
            continue
        if field.is_relation:  # a concrete relation is a ForeignKey (or OneToOneField)
            record[field.name] = _related(instance, cast("models.ForeignKey[Any, Any]", field), depth)
        else:
            record[field.name] = _typed(field, getattr(instance, field.attname))
    return record


def _related(instance: models.Model, field: models.ForeignKey[Any, Any], depth: int) -> dict[str, Any] | None:
    key = getattr(instance, field.attname)
    if key is None:
        return None
    if depth > 0:
        try:
            return snapshot(getattr(instance, field.name), depth - 1)
        except ObjectDoesNotExist:
            pass
    target = field.target_field
    record = {"pk": key} if target.primary_key else {}
    record[target.name] = key
    return record


def _typed(field: models.Field, value: Any) -> Any:
    """The field's Python type for a value assigned loosely (``"12.50"`` for a decimal), else the value itself."""
    try:
        return field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return value


# Values that travel on the channel layer as JSON and come back as the same value (``events.model``): a field whose
# database value is of another type (bytes, a duration, JSON) is left out of a committed row, and a subscription
# that shows or tests it is read from the database instead.
_CARRIED = (str, int, float, bool, Decimal, datetime.date, datetime.time, uuid.UUID)


def _carried(field: models.Field) -> bool:
    return not isinstance(field, models.JSONField | models.BinaryField | models.DurationField)


def _columns(model: type[models.Model]) -> tuple[list[str], list[tuple[models.Field, list[models.Field]]]]:
    """The ``values()`` paths of a row and its related rows (one level), and the relations with their fields."""
    paths = ["pk"]
    relations: list[tuple[models.Field, list[models.Field]]] = []
    for field in model._meta.concrete_fields:
        if not _carried(field):
            continue
        paths.append(field.attname)
        if field.is_relation:
            related = cast("type[models.Model]", field.related_model)
            fields = [f for f in related._meta.concrete_fields if _carried(f)]
            paths.append(f"{field.name}__pk")
            paths.extend(f"{field.name}__{f.attname}" for f in fields)
            relations.append((field, fields))
    return paths, relations


def committed_rows(model: type[models.Model], keys: Iterable[Any], using: str) -> dict[Any, dict[str, Any]]:
    """The rows ``keys`` of ``model`` as the database holds them now, in ``snapshot``'s shape (sync: one query).

    Read in the writing transaction right after the write, this is the state that the write commits: the state an
    event's frames carry (``access.reads.read_committed``), where a read at delivery time would show whatever a
    later write left. Read through the base manager: a default manager that hides rows must not hide the row from
    the event (the subscriptions' own reads apply it, or are made in the database: ``reads.read_committed``).
    Values are the database's (``values()``), with a field that cannot travel as JSON left out.
    """
    paths, relations = _columns(model)
    rows: dict[Any, dict[str, Any]] = {}
    for values in model._base_manager.using(using).filter(pk__in=list(keys)).values(*paths):
        record: dict[str, Any] = {"pk": values["pk"]}
        for field in model._meta.concrete_fields:
            if not _carried(field) or field.is_relation:
                continue
            record[field.name] = values[field.attname]
        for relation, fields in relations:
            key = values[relation.attname]
            related_pk = values[f"{relation.name}__pk"]
            if key is None:
                record[relation.name] = None
            elif related_pk is not None:  # else a key that names no row (no constraint): left out, not guessed
                record[relation.name] = _related_record(relation, fields, values, related_pk)
        rows[values["pk"]] = {name: value for name, value in record.items() if _travels(value)}
    return rows


def _related_record(
    relation: models.Field, fields: list[models.Field], values: dict[str, Any], related_pk: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {"pk": related_pk}
    for field in fields:
        value = values[f"{relation.name}__{field.attname}"]
        if field.is_relation:  # one level only: the related row's own relations as snapshot() gives them at depth 0
            if value is None:
                record[field.name] = None
                continue
            target = cast("models.ForeignKey[Any, Any]", field).target_field
            value = {"pk": value, target.name: value} if target.primary_key else {target.name: value}
        elif not _travels(value):
            continue
        record[field.name] = value
    return record


def _travels(value: Any) -> bool:
    if value is None or isinstance(value, _CARRIED):
        return True
    if isinstance(value, dict):
        return all(_travels(item) for item in value.values())
    return False
