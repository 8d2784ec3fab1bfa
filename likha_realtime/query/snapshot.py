"""Snapshots a model instance as a dict of typed field values, the row shape that ``evaluate`` reads."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Collection, Iterable
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

Exposed = Callable[[type[models.Model]], Collection[str] | None]


def _carried(field: models.Field) -> bool:
    """Whether a field's value travels and is compared in Python as the database compares it: not JSON, binary or
    a duration; not text under a collation of its own or case-insensitive (``citext``), whose comparisons only the
    database knows; not a relation to a column other than the related row's key (rules compare a relation by key)."""
    if isinstance(field, models.JSONField | models.BinaryField | models.DurationField):
        return False
    if getattr(field, "db_collation", None) or type(field).__name__.startswith("CI"):
        return False
    return not field.is_relation or cast("models.ForeignKey[Any, Any]", field).target_field.primary_key


def _columns(
    model: type[models.Model], exposed: Exposed
) -> tuple[list[str], list[models.Field], list[tuple[models.Field, list[models.Field] | None]]]:
    """The ``values()`` paths of a row and its related rows (one level), its own fields, and its relations with the
    related fields that travel (``None``: only the related key)."""
    own = _travelling(model, exposed(model) or ())
    paths = ["pk"]
    relations: list[tuple[models.Field, list[models.Field] | None]] = []
    for field in own:
        paths.append(field.attname)
        if not field.is_relation:
            continue
        related = cast("type[models.Model]", field.related_model)
        related_names = exposed(related)
        if related_names is None:
            relations.append((field, None))
            continue
        fields = [
            f for f in related._meta.concrete_fields if _carried(f) and (f.name in related_names or f.primary_key)
        ]
        paths.append(f"{field.name}__pk")
        paths.extend(f"{field.name}__{f.attname}" for f in fields)
        relations.append((field, fields))
    return paths, own, relations


def _travelling(model: type[models.Model], names: Collection[str]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if _carried(f) and (f.name in names or f.primary_key)]


def committed_rows(
    model: type[models.Model], keys: Iterable[Any], using: str, exposed: Exposed
) -> dict[Any, dict[str, Any]]:
    """The rows ``keys`` of ``model`` as the database holds them now, in ``snapshot``'s shape (sync: one query).

    Read right after the commit (``events.capture``): the state the event's frames carry
    (``access.reads.read_committed``), where a read at delivery time would show whatever a later write left. Read
    through the base manager: a default manager that hides rows must not hide the row from the event (subscribers'
    reads with such a manager go to the database). Values are the database's (``values()``). Only the fields
    ``exposed`` names for a model travel (a registered collection's fields; a related model that is not one travels
    as its key only), so nothing a frame could never show (a password hash) is put on the channel layer; a
    subscription that tests another field is read from the database instead.
    """
    paths, own, relations = _columns(model, exposed)
    rows: dict[Any, dict[str, Any]] = {}
    for values in model._base_manager.using(using).filter(pk__in=list(keys)).values(*paths):
        record: dict[str, Any] = {"pk": values["pk"]}
        for field in own:
            if not field.is_relation:
                record[field.name] = values[field.attname]
        for relation, fields in relations:
            key = values[relation.attname]
            if key is None:
                record[relation.name] = None
            elif fields is None:
                record[relation.name] = _key_record(relation, key)
            elif values[f"{relation.name}__pk"] is not None:  # else a key that names no row: left out, not guessed
                record[relation.name] = _related_record(relation, fields, values, values[f"{relation.name}__pk"])
        rows[values["pk"]] = {name: value for name, value in record.items() if _travels(value)}
    return rows


def _key_record(relation: models.Field, key: Any) -> dict[str, Any]:
    """A related row known by its key only, as ``snapshot`` gives it at depth 0."""
    target = cast("models.ForeignKey[Any, Any]", relation).target_field
    return {"pk": key, target.name: key} if target.primary_key else {target.name: key}


def _related_record(
    relation: models.Field, fields: list[models.Field], values: dict[str, Any], related_pk: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {"pk": related_pk}
    for field in fields:
        value = values[f"{relation.name}__{field.attname}"]
        if field.is_relation:  # one level only: the related row's own relations as snapshot() gives them at depth 0
            record[field.name] = None if value is None else _key_record(field, value)
            continue
        if _travels(value):
            record[field.name] = value
    return record


def _travels(value: Any) -> bool:
    if value is None or isinstance(value, _CARRIED):
        return True
    if isinstance(value, dict):
        return all(_travels(item) for item in value.values())
    return False
