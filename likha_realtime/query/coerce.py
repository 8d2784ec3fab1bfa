"""Coerces filter values with the model field they apply to, so the database and ``evaluate`` see the same value."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime, parse_time

from likha_realtime.wire.errors import InvalidQuery

TEXT_FIELDS = (models.CharField, models.TextField)
# Portable column ranges (PostgreSQL's); a value outside them never reaches Django's overflow shortcuts, which
# answer "all rows" even for NULLs.
INTEGER_RANGES = BaseDatabaseOperations.integer_field_ranges
DEFAULT_INTEGER_RANGE = INTEGER_RANGES["BigIntegerField"]


def is_text(field: models.Field) -> bool:
    return isinstance(field, TEXT_FIELDS)


def is_supported(field: models.Field) -> bool:
    """Field types whose comparisons ``evaluate`` reproduces exactly (custom collations change text equality)."""
    if is_text(field):
        return not getattr(field, "db_collation", None)
    return isinstance(field, (models.BooleanField, *_COERCERS))


def coerce(field: models.Field, value: Any, *, label: str, operator: str) -> Any:
    """``value`` as the Python type of ``field``; raises ``InvalidQuery`` naming ``label`` and ``operator``."""
    if isinstance(field, models.BooleanField):
        if isinstance(value, bool):
            return value
        raise _invalid(label, operator, "true or false", value)
    if isinstance(value, bool):
        raise _invalid(label, operator, _expected(field), value)
    if is_text(field):
        if isinstance(value, str) and "\x00" not in value:
            return value
        raise _invalid(label, operator, "a string without NUL characters", value)
    for field_class, coercer in _COERCERS.items():
        if isinstance(field, field_class):
            try:
                return coercer(field, value)
            except (ValidationError, TypeError, ValueError, ArithmeticError, InvalidOperation) as exc:
                raise _invalid(label, operator, _expected(field), value) from exc
    raise InvalidQuery(f'Filtering on "{label}" is not supported.')


def _integer(field: models.Field, value: Any) -> int:
    if isinstance(value, float | Decimal) and value != int(value):
        raise ValueError("not an integer")
    number = int(value.strip() if isinstance(value, str) else value)
    low, high = _integer_range(field)
    if not low <= number <= high:
        raise ValueError("out of range")
    return number


def _integer_range(field: models.Field) -> tuple[int, int]:
    return INTEGER_RANGES.get(field.get_internal_type(), DEFAULT_INTEGER_RANGE)


def _decimal(field: models.DecimalField, value: Any) -> Decimal:
    if not isinstance(value, int | float | str | Decimal):
        raise TypeError("not a number")
    number: Decimal = field.to_python(value.strip() if isinstance(value, str) else value)
    if not number.is_finite():
        raise ValueError("not finite")
    places = Decimal(1).scaleb(-field.decimal_places)
    if number != number.quantize(places) or abs(number) >= Decimal(10) ** (field.max_digits - field.decimal_places):
        raise ValueError("does not fit the field")
    return number


def _float(field: models.Field, value: Any) -> float:
    if not isinstance(value, int | float | str | Decimal):
        raise TypeError("not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    return number


def _datetime(field: models.Field, value: Any) -> dt.datetime:
    if isinstance(value, str):
        parsed = parse_datetime(value.strip())
        day = None if parsed is not None else parse_date(value.strip())
        value = parsed if day is None else dt.datetime.combine(day, dt.time())
    if not isinstance(value, dt.datetime):
        raise TypeError("not a date-time")
    moment: dt.datetime = value
    if settings.USE_TZ:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_default_timezone())
        return moment.astimezone(dt.UTC)
    if timezone.is_aware(moment):
        moment = timezone.make_naive(moment, timezone.get_default_timezone())
    return moment


def _date(field: models.Field, value: Any) -> dt.date:
    parsed = parse_date(value.strip()) if isinstance(value, str) else value
    if type(parsed) is not dt.date:
        raise TypeError("not a date")
    return parsed


def _time(field: models.Field, value: Any) -> dt.time:
    parsed = parse_time(value.strip()) if isinstance(value, str) else value
    if not isinstance(parsed, dt.time) or parsed.tzinfo is not None:
        raise TypeError("not a time of day")
    return parsed


def _uuid(field: models.Field, value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise TypeError("not a UUID")
    return uuid.UUID(value.strip())


# Order matters: DateTimeField subclasses DateField. Auto fields subclass the integer fields.
_COERCERS: dict[type[models.Field], Any] = {
    models.DateTimeField: _datetime,
    models.DateField: _date,
    models.TimeField: _time,
    models.DecimalField: _decimal,
    models.FloatField: _float,
    models.IntegerField: _integer,
    models.UUIDField: _uuid,
}


def _expected(field: models.Field) -> str:
    if isinstance(field, models.DecimalField):
        whole = field.max_digits - field.decimal_places
        return f"a number with at most {whole} digits before the point and {field.decimal_places} after it"
    if isinstance(field, models.IntegerField):
        low, high = _integer_range(field)
        return f"an integer between {low} and {high}"
    if isinstance(field, models.DateTimeField):
        return 'an ISO 8601 date-time such as "2024-05-01T12:30:00Z"'
    if isinstance(field, models.DateField):
        return 'an ISO 8601 date such as "2024-05-01"'
    if isinstance(field, models.TimeField):
        return 'a time of day such as "12:30:00"'
    if isinstance(field, models.UUIDField):
        return "a UUID string"
    if isinstance(field, models.FloatField):
        return "a finite number"
    return "a string"


def _invalid(label: str, operator: str, expected: str, value: Any) -> InvalidQuery:
    try:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        shown = type(value).__name__
    shown = shown if len(shown) <= 64 else shown[:61] + "..."
    return InvalidQuery(f'Invalid value for "{label}" with "{operator}": expected {expected}, received {shown}.')
