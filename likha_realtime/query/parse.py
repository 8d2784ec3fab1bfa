"""Parses the query of a subscription or item read (PROTOCOL §5), in object or SDK string form, into a ``Query``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from likha_realtime.wire.errors import InvalidQuery
from likha_realtime.wire.text import UNSTORABLE, storable

QUERY_KEYS = ("fields", "filter", "sort", "limit", "offset", "page", "meta")
META_KEYS = frozenset({"total_count", "filter_count"})
MAX_OFFSET = 2**31 - 1

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\*)?|\*")
_SORT = re.compile(r"-?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_INTEGER = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True)
class Query:
    """A validated query; ``filter`` is the raw filter object (compiled per model by ``compile_filter``)."""

    fields: tuple[str, ...] = ("*",)
    filter: dict[str, Any] | None = None
    sort: tuple[str, ...] = ()
    limit: int = 100
    offset: int = 0
    meta: frozenset[str] = frozenset()

    def cache_key(self) -> str:
        """A canonical JSON text: two queries with the same key select and shape the same rows."""
        return json.dumps(
            {
                "fields": list(self.fields),
                "filter": self.filter,
                "sort": list(self.sort),
                "limit": self.limit,
                "offset": self.offset,
                "meta": sorted(self.meta),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def __hash__(self) -> int:
        return hash(self.cache_key())


def parse_query(raw: Any, *, limit_default: int, limit_max: int) -> Query:
    """The ``Query`` of ``raw`` (None, or a dict of the keys in ``QUERY_KEYS``); raises ``InvalidQuery``."""
    if raw is None:
        return Query(limit=limit_default)
    if not isinstance(raw, dict):
        raise InvalidQuery('"query" must be an object.')
    for key in raw:
        if not storable(key):
            raise InvalidQuery(f'"query" {UNSTORABLE}')
        if key not in QUERY_KEYS:
            raise InvalidQuery(f'Unknown query parameter "{str(key)[:64]}"; expected one of {", ".join(QUERY_KEYS)}.')
    for key, value in raw.items():
        if not storable(value):  # before any parameter quotes its value in an error
            raise InvalidQuery(f'"{key}" {UNSTORABLE}')
    limit = _limit(raw.get("limit"), limit_default, limit_max)
    return Query(
        fields=_fields(raw.get("fields")),
        filter=_filter(raw.get("filter")),
        sort=_sort(raw.get("sort")),
        limit=limit,
        offset=_offset(raw.get("offset"), raw.get("page"), limit),
        meta=_meta(raw.get("meta")),
    )


def _names(key: str, value: Any) -> list[str]:
    """A list of names from a list of strings or a comma-separated string."""
    if isinstance(value, str):
        items = value.split(",") if value.strip() else []
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise InvalidQuery(f'"{key}" must be a list of strings or a comma-separated string.')
    return [item.strip() for item in items]


def _fields(value: Any) -> tuple[str, ...]:
    if value is None:
        return ("*",)
    names = _names("fields", value)
    if not names:
        raise InvalidQuery('"fields" must name at least one field.')
    for name in names:
        if not _FIELD.fullmatch(name):
            raise InvalidQuery(f'"fields" must hold field names such as "name" or "customer.name", received "{name}".')
    return tuple(dict.fromkeys(names))


def _filter(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise InvalidQuery('"filter" must be a JSON object, received text that is not valid JSON.') from exc
    if not isinstance(value, dict):
        raise InvalidQuery('"filter" must be an object (or the JSON text of one).')
    try:
        copied = json.loads(json.dumps(value, allow_nan=False), parse_constant=_reject_constant)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidQuery('"filter" must hold only JSON values (no NaN or Infinity).') from exc
    if not storable(copied):  # the JSON text's escapes, decoded
        raise InvalidQuery(f'"filter" {UNSTORABLE}')
    return copied or None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _sort(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    names = _names("sort", value)
    for name in names:
        if not _SORT.fullmatch(name):
            raise InvalidQuery(f'"sort" must hold field names, "-" first for descending, received "{name}".')
    return tuple(names)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise InvalidQuery(f'"{key}" must be an integer, received {_shown(value)}.')


def _limit(value: Any, default: int, maximum: int) -> int:
    if value is None:
        return default
    limit = _integer("limit", value)
    if limit == -1:
        return maximum
    if not 1 <= limit <= maximum:
        raise InvalidQuery(f'"limit" must be between 1 and {maximum} (or -1 for the maximum), received {limit}.')
    return limit


def _offset(offset: Any, page: Any, limit: int) -> int:
    if offset is not None and page is not None:
        raise InvalidQuery('Use either "offset" or "page", not both.')
    if page is not None:
        number = _integer("page", page)
        if number < 1:
            raise InvalidQuery(f'"page" must be 1 or more, received {number}.')
        if (number - 1) * limit > MAX_OFFSET:
            raise InvalidQuery(f'"page" is too large: {number} pages of {limit} go past {MAX_OFFSET} rows.')
        return (number - 1) * limit
    if offset is None:
        return 0
    number = _integer("offset", offset)
    if not 0 <= number <= MAX_OFFSET:
        raise InvalidQuery(f'"offset" must be between 0 and {MAX_OFFSET}, received {number}.')
    return number


def _meta(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    names = set(_names("meta", value))
    if "*" in names:
        names = (names - {"*"}) | META_KEYS
    for name in sorted(names - META_KEYS):
        raise InvalidQuery(f'"meta" must list "total_count", "filter_count" or "*", received "{name}".')
    return frozenset(names)


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 64 else text[:61] + "..."
