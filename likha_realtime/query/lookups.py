"""Text lookups (``lk_*``) with one meaning on SQLite and PostgreSQL, registered on CharField and TextField.

Django's ``contains``/``startswith``/``endswith`` use LIKE, which SQLite folds for ASCII and PostgreSQL does not, and
``lt``/``gt`` on text follow the database collation. These lookups are case-sensitive (``lk_icontains`` aside) and
order text by code point on both backends, so ``likha_realtime.query.evaluate`` can reproduce them in Python.
``lk_icontains`` folds with the database's ``LOWER``: ASCII only on SQLite (without ICU), the ctype of the database
locale on PostgreSQL; ``evaluate.fold`` mirrors both.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import NotSupportedError, models
from django.db.models import Lookup

_PLACEHOLDER = re.compile(r"\{(lhs|rhs)\}")


class TextLookup(Lookup):
    """A lookup written as one SQL template per vendor, with ``{lhs}`` and ``{rhs}`` placeholders."""

    templates: dict[str, str] = {}

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        template = self.templates.get(connection.vendor)
        if template is None:
            raise NotSupportedError(f'The "{self.lookup_name}" lookup supports SQLite and PostgreSQL only.')
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        parts = {"lhs": (lhs_sql, list(lhs_params)), "rhs": (rhs_sql, list(rhs_params))}
        params: list[Any] = []
        for match in _PLACEHOLDER.finditer(template):
            params.extend(parts[match.group(1)][1])
        return template.format(lhs=lhs_sql, rhs=rhs_sql), params


class Contains(TextLookup):
    lookup_name = "lk_contains"
    templates = {"sqlite": "INSTR({lhs}, {rhs}) > 0", "postgresql": "STRPOS({lhs}, ({rhs})::text) > 0"}


class IContains(TextLookup):
    lookup_name = "lk_icontains"
    templates = {
        "sqlite": "INSTR(LOWER({lhs}), LOWER({rhs})) > 0",
        "postgresql": "STRPOS(LOWER({lhs}), LOWER(({rhs})::text)) > 0",
    }


class StartsWith(TextLookup):
    lookup_name = "lk_startswith"
    templates = {
        "sqlite": "SUBSTR({lhs}, 1, LENGTH({rhs})) = {rhs}",
        "postgresql": "SUBSTR({lhs}, 1, LENGTH(({rhs})::text)) = ({rhs})::text",
    }


class EndsWith(TextLookup):
    # A suffix longer than the value gives a start <= 0: both SUBSTRs then return at most the whole value, never equal.
    lookup_name = "lk_endswith"
    templates = {
        "sqlite": "SUBSTR({lhs}, LENGTH({lhs}) - LENGTH({rhs}) + 1) = {rhs}",
        "postgresql": "SUBSTR({lhs}, LENGTH({lhs}) - LENGTH(({rhs})::text) + 1) = ({rhs})::text",
    }


def _ordering(name: str, operator: str) -> type[TextLookup]:
    """Code point order: SQLite's BINARY collation, PostgreSQL's "C" collation (UTF-8 byte order)."""
    templates = {
        "sqlite": f"{{lhs}} COLLATE BINARY {operator} {{rhs}}",
        "postgresql": f'{{lhs}} COLLATE "C" {operator} ({{rhs}})::text',
    }
    return type(f"Text{name.title()}", (TextLookup,), {"lookup_name": f"lk_{name}", "templates": templates})


LessThan = _ordering("lt", "<")
LessThanOrEqual = _ordering("lte", "<=")
GreaterThan = _ordering("gt", ">")
GreaterThanOrEqual = _ordering("gte", ">=")

TEXT_LOOKUPS: tuple[type[TextLookup], ...] = (
    Contains,
    IContains,
    StartsWith,
    EndsWith,
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
)
LOOKUP_NAMES = frozenset(lookup.lookup_name for lookup in TEXT_LOOKUPS)


def register_lookups() -> None:
    """Registers every ``lk_*`` lookup on CharField and TextField (and so their subclasses); safe to call again."""
    for field_class in (models.CharField, models.TextField):
        registered = field_class.get_lookups()  # on a class: get_class_lookups() (which the stubs lack)
        for lookup in TEXT_LOOKUPS:
            if registered.get(lookup.lookup_name) is not lookup:
                field_class.register_lookup(lookup)
