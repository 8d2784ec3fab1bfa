"""Compiles the filter language of PROTOCOL §5 into a Django ``Q`` that ``evaluate`` reproduces row by row.

Null semantics (shared by the database and ``evaluate``): comparisons, ``_in``, ``_between`` and the text operators
never match NULL; ``_eq: null`` / ``_neq: null`` are ``_null`` / ``_nnull``; ``_neq``, ``_nin`` and ``_ncontains``
are negations and so do match NULL; a path through a NULL relation reads as NULL. Operators on a relation itself
compare its target key (``{"customer": {"_eq": 5}}`` is ``customer__id__exact=5``). Text is compared with the
``lk_*`` lookups, so order (``_lt``, ``_between``) is code point order on every database.

A ``Guard`` decides what a filter may name: it vets each field by its real name (``pk`` resolved) before the field
is even looked up, so it sees unknown names too, and it says which relations the filter may look through. A
relation it may not follow is a plain key: operators compare the key, and a path through it is refused as a path
through a field that is not a relation. So a guard that answers every name it refuses with one error, and every path
it refuses with one error, leaves nothing in the errors telling hidden fields and relations from absent ones.

Rows a guard hides (``Guard.visible``, a principal's row rule on the related collection) are not there for the
filter: every condition that reads a field of a related row also requires that row to be visible, so a condition on
a hidden row is false whatever its operator (``_neq``, ``_nin``, ``_ncontains`` and ``_null`` too: there is no value
to compare). Operators on the relation itself compare this row's own key and are not affected; a NULL relation hides
nothing, and paths through it read NULL as before. The requirement is added once per relation step of a dotted key
or nested relation object, which is the same as adding it to each condition under it: those are joined by AND and
OR only. Without hidden rows the ``Q`` is exactly what it was.
"""

from __future__ import annotations

import operator as op
from functools import reduce
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Field, ForeignKey, Model, Q

from likha_realtime.query.coerce import coerce, is_supported, is_text
from likha_realtime.query.evaluate import Unevaluable, evaluate, fold
from likha_realtime.query.snapshot import snapshot
from likha_realtime.query.visibility import visible_through
from likha_realtime.wire.errors import InvalidQuery

__all__ = ["OPERATORS", "Guard", "Unevaluable", "compile_filter", "evaluate", "fold", "snapshot"]

MAX_DEPTH = 16
MAX_VALUES = 1000
LOGICAL = {"_and": op.and_, "_or": op.or_}
COMPARISONS = {"_lt": "lt", "_lte": "lte", "_gt": "gt", "_gte": "gte"}
TEXT_OPERATORS = {
    "_contains": "lk_contains",
    "_ncontains": "lk_contains",
    "_icontains": "lk_icontains",
    "_starts_with": "lk_startswith",
    "_ends_with": "lk_endswith",
}
OPERATORS = (
    "_eq", "_neq", *COMPARISONS, "_in", "_nin", "_null", "_nnull", *TEXT_OPERATORS, "_between",
)  # fmt: skip


class Guard:
    """What a filter may name, asked while the compiler walks it. This base allows every field and forward relation
    and leaves the errors to the compiler, which names what does not exist; ``access.reads`` subclasses it with a
    principal's rights."""

    def vet(self, model: type[Model], name: str) -> None:
        """Raise to refuse the field ``name`` of ``model``; called before the field is looked up (so also with
        names that do not exist), with the primary key by its field name."""

    def follows(self, model: type[Model], relation: Field) -> bool:
        """Whether the filter may look through ``relation``, a forward relation of ``model``, at its target's
        fields; when not, the relation is a plain key (``refuse_path`` answers a path through it)."""
        return True

    def refuse_path(self, model: type[Model], key: str, label: str) -> Exception | None:
        """The error for the dotted ``key`` of a filter on ``model`` (``label``: the same, from the filter's root)
        whose first field is not a relation, or one that may not be followed; ``None``: the compiler's own."""
        return None

    def visible(self, model: type[Model]) -> Q | None:
        """The rows of ``model`` a filter may read through a relation (a row rule on ``model``); ``None``: all.
        Asked for each relation the filter looks through."""
        return None


def compile_filter(model: type[Model], raw_filter: dict[str, Any], *, guard: Guard | None = None) -> Q:
    """The ``Q`` of ``raw_filter`` on ``model``; ``guard`` vets each field before it is used."""
    if not isinstance(raw_filter, dict):
        raise InvalidQuery('"filter" must be an object.')
    return _Compiler(guard or Guard(), model).scope(model, raw_filter, "", "", 0)


def _leaf(path: str, lookup: str, value: Any) -> Q:
    return Q(**{f"{path}__{lookup}": value})


def _all(conditions: list[Q]) -> Q:
    return reduce(op.and_, conditions) if conditions else Q()


class _Compiler:
    def __init__(self, guard: Guard, root: type[Model]) -> None:
        self.guard = guard
        self.root = root

    def scope(self, model: type[Model], raw: dict[str, Any], path: str, label: str, depth: int) -> Q:
        """Every key of ``raw`` (fields and ``_and``/``_or``) on ``model``, ANDed."""
        if depth > MAX_DEPTH:
            raise InvalidQuery(f'"filter" is nested too deeply (at most {MAX_DEPTH} levels).')
        conditions = []
        for key, value in raw.items():
            if key in LOGICAL:
                conditions.append(self.logical(model, key, value, path, label, depth))
            elif key in OPERATORS:
                raise InvalidQuery(f'Operator "{key}" must be applied to a field, as in {{"name": {{"{key}": …}}}}.')
            else:
                conditions.append(self.condition(model, str(key), value, path, label, depth))
        return _all(conditions)

    def logical(self, model: type[Model], key: str, value: Any, path: str, label: str, depth: int) -> Q:
        if not isinstance(value, list) or not value or not all(isinstance(item, dict) and item for item in value):
            raise InvalidQuery(f'"{key}" must be a non-empty list of non-empty filter objects.')
        return reduce(LOGICAL[key], [self.scope(model, item, path, label, depth + 1) for item in value])

    def condition(self, model: type[Model], key: str, value: Any, path: str, label: str, depth: int) -> Q:
        """The condition of one (possibly dotted) field key."""
        name, dot, rest = key.partition(".")
        if not name or (dot and not rest):
            raise InvalidQuery(f'Invalid field path "{label}{key}" in "filter".')
        field = self.field(model, name, label + name)
        if dot:
            related = self.through(model, field, key, label)
            inner = self.condition(related, rest, value, f"{path}{field.name}__", f"{label}{name}.", depth + 1)
            return self.visible(field, f"{path}{field.name}", inner)
        if not isinstance(value, dict) or not value:
            raise InvalidQuery(f'The filter on "{label}{name}" must be an object of operators, such as {{"_eq": …}}.')
        if field.is_relation:
            return self.relation(model, field, value, f"{path}{field.name}", f"{label}{name}", depth)
        return self.operators(field, value, f"{path}{field.name}", f"{label}{name}")

    def follows(self, model: type[Model], field: Field) -> bool:
        return field.is_relation and self.guard.follows(model, field)

    def through(self, model: type[Model], field: Field, key: str, label: str) -> type[Model]:
        """The model the dotted ``key`` goes on in: the target of its first field, ``field``, if it may be followed."""
        if self.follows(model, field):
            return _related_model(field)
        head = label + key.partition(".")[0]
        refused = self.guard.refuse_path(model, key, label + key)
        raise refused or InvalidQuery(f'"{head}" is not a relation, so "{head}.…" cannot be filtered.')

    def field(self, model: type[Model], name: str, label: str) -> Field:
        """The field ``name`` of ``model`` (``pk``, and ``id`` without such a field, mean the primary key)."""
        real = model._meta.pk.name if name == "pk" or (name == "id" and not _has_field(model, "id")) else name
        self.guard.vet(model, real)
        try:
            field = model._meta.get_field(real)
        except FieldDoesNotExist:
            raise InvalidQuery(f'Unknown field "{name}" on model "{model._meta.model_name}".') from None
        if field.is_relation and not (field.concrete and (field.many_to_one or field.one_to_one)):
            raise InvalidQuery(f'Filtering on "{label}" is not supported: only fields and forward relations are.')
        checked = cast(Field, field)  # past that check: a concrete field or forward relation, both a Field
        if not is_supported(_target(checked) if checked.is_relation else checked):
            raise InvalidQuery(f'Filtering on "{label}" is not supported.')
        return checked

    def relation(self, model: type[Model], field: Field, raw: dict[str, Any], path: str, label: str, depth: int) -> Q:
        """Operators on the relation's key, and conditions on the related model's fields (if the guard lets the
        filter follow it: else every key is an operator on the key, as on a field that is not a relation)."""
        follows = self.follows(model, field)
        operators = {key: value for key, value in raw.items() if _is_operator(key) or not follows}
        conditions = []
        if operators:
            target = _target(field)
            conditions.append(self.operators(target, operators, f"{path}__{target.name}", label))
        nested = {key: value for key, value in raw.items() if key not in operators}
        if nested:
            inner = self.scope(_related_model(field), nested, f"{path}__", f"{label}.", depth + 1)
            conditions.append(self.visible(field, path, inner))
        return _all(conditions)

    def visible(self, relation: Field, path: str, condition: Q) -> Q:
        """``condition``, which reads the row related through ``relation`` at ``path``, where that row is one the
        guard lets the filter see (unchanged when it hides none)."""
        rule = self.guard.visible(_related_model(relation))
        if not rule:  # None, or an empty Q: every row
            return condition
        foreign_key = cast("ForeignKey[Any, Any]", relation)
        return visible_through(path, foreign_key, rule, nullable=_nullable(self.root, path)) & condition

    def operators(self, field: Field, raw: dict[str, Any], path: str, label: str) -> Q:
        conditions = []
        for name, value in raw.items():
            if name not in OPERATORS:
                raise InvalidQuery(f'Unknown operator "{name}" on "{label}"; expected one of {", ".join(OPERATORS)}.')
            conditions.append(_operator(field, name, value, path, label))
        return _all(conditions)


def _is_operator(key: str) -> bool:
    """In a relation object, ``_``-keys other than ``_and``/``_or`` are operators on the relation's key."""
    return key.startswith("_") and key not in LOGICAL


def _nullable(model: type[Model], path: str) -> bool:
    """Whether the relation at ``path`` from ``model`` can be NULL: some relation on the way to it is nullable."""
    for name in path.split("__"):
        field = cast(Field, model._meta.get_field(name))  # a forward relation, as the compiler walked it
        if field.null:
            return True
        model = _related_model(field)
    return False


def _has_field(model: type[Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _operator(field: Field, name: str, value: Any, path: str, label: str) -> Q:
    if name in ("_null", "_nnull"):
        if not isinstance(value, bool):
            raise InvalidQuery(f'"{name}" on "{label}" expects true or false.')
        return _leaf(path, "isnull", value == (name == "_null"))
    if name in ("_eq", "_neq"):
        if value is None:
            return _leaf(path, "isnull", name == "_eq")
        condition = _leaf(path, "exact", _value(field, value, name, label))
        return condition if name == "_eq" else _negated(path, condition)
    if name in ("_in", "_nin"):
        condition = _leaf(path, "in", _values(field, value, name, label))
        return condition if name == "_in" else _negated(path, condition)
    if name == "_between":
        return _between(field, value, path, label)
    if name in COMPARISONS:
        lookup = COMPARISONS[name]
        return _leaf(path, f"lk_{lookup}" if is_text(field) else lookup, _value(field, value, name, label))
    return _text(field, name, value, path, label)


def _value(field: Field, value: Any, name: str, label: str) -> Any:
    if value is None:
        raise InvalidQuery(f'"{name}" on "{label}" expects a value, received null.')
    return coerce(field, value, label=label, operator=name)


def _values(field: Field, value: Any, name: str, label: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_VALUES:
        raise InvalidQuery(f'"{name}" on "{label}" expects a list of at most {MAX_VALUES} values.')
    return [_value(field, item, name, label) for item in value]


def _between(field: Field, value: Any, path: str, label: str) -> Q:
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidQuery(f'"_between" on "{label}" expects a list of two values, [low, high].')
    low, high = (_value(field, item, "_between", label) for item in value)
    if is_text(field):
        return _leaf(path, "lk_gte", low) & _leaf(path, "lk_lte", high)
    return _leaf(path, "range", (low, high))


def _target(relation: Field) -> Field:
    """The key field a forward relation points at (``field()`` lets only forward relations through)."""
    return cast("ForeignKey[Any, Any]", relation).target_field


def _related_model(relation: Field) -> type[Model]:
    """The model a forward relation points at (resolved to a class once the app registry is ready)."""
    return cast("type[Model]", relation.related_model)


def _text(field: Field, name: str, value: Any, path: str, label: str) -> Q:
    if not is_text(field):
        raise InvalidQuery(f'"{name}" applies to text fields only, and "{label}" is not one.')
    if not isinstance(value, str):
        raise InvalidQuery(f'"{name}" on "{label}" expects a string.')
    condition = _leaf(path, TEXT_OPERATORS[name], _value(field, value, name, label))
    return _negated(path, condition) if name == "_ncontains" else condition


def _negated(path: str, condition: Q) -> Q:
    """``~condition``, matching NULL. Through a relation the NULL case is spelled out: Django adds its own
    ``IS NOT NULL`` guard only if the join is outer when the lookup is built, which depends on earlier conditions
    (``{"_or": [{"customer": {"_eq": 1, "_neq": 1}}, {"customer": {"email": {"_ncontains": ""}}}]}`` lost it)."""
    if "__" in path:
        return _leaf(path, "isnull", True) | ~condition
    return ~condition
