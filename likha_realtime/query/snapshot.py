"""Snapshots a model instance as a dict of typed field values, the row shape that ``evaluate`` reads."""

from __future__ import annotations

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
