"""Reading rows under a principal's rights: fields, filter, sort and window of a query, row and field rules.

Synchronous (database) code: callers in async contexts wrap it with ``database_sync_to_async``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist
from django.db import connection, models
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.expressions import OrderBy

from likha_realtime.access.collections import Collection, registry
from likha_realtime.access.principal import Principal
from likha_realtime.query import Guard, Query, Unevaluable, compile_filter, evaluate
from likha_realtime.query.visibility import visible_through
from likha_realtime.wire.errors import Forbidden, InvalidQuery
from realtime_auth.wire import RealtimeError


def no_access(collection_name: Any) -> Forbidden:
    return Forbidden(f'You don\'t have permission to access collection "{collection_name}" or it does not exist.')


def field_forbidden(collection: Collection, name: str) -> Forbidden:
    return Forbidden(f'You don\'t have permission to access field "{name}" in collection "{collection.name}".')


def unusable_field(principal: Principal, collection: Collection, name: str, *, exists: bool) -> RealtimeError:
    """The error for a field name ``principal`` may not use in ``collection``.

    Only superusers are told that a name does not exist (``INVALID_QUERY``); everyone else gets ``FORBIDDEN`` whether
    it exists or not, so that an error never tells a field they may not read from one that is not there.
    """
    if principal.is_superuser and not exists:
        return InvalidQuery(f'Unknown field "{name}" in collection "{collection.name}".')
    return field_forbidden(collection, name)


def collection_for(principal: Principal, name: Any, action: str = "view") -> Collection:
    """The registered collection ``name`` if ``principal`` may ``action`` it; one answer for both failures."""
    collection = registry.get(name)
    if collection is None or not principal.has_perm(collection, action):
        raise no_access(name if isinstance(name, str) else "")
    return collection


@dataclass
class ReadPlan:
    collection: Collection
    principal: Principal
    query: Query
    condition: Q  # row rule AND filter
    paths: list[str]  # ORM ``values()`` paths
    output: list[tuple[str, ...]]  # requested fields as path tuples, in order
    nested_rules: dict[str, tuple[Collection, Q]] = field(default_factory=dict)  # relation -> rule to apply
    order: list[str | OrderBy] = field(default_factory=list)  # ``order_by`` arguments


def plan_read(collection: Collection, principal: Principal, query: Query) -> ReadPlan:
    """Validate ``query`` against ``principal``'s rights and prepare the database read."""
    condition = principal.row_q(collection) or Q()
    if query.filter:
        condition &= compile_filter(collection.model, query.filter, guard=RightsGuard(principal))
    plan = ReadPlan(collection, principal, query, condition, [], [])
    for name in query.fields:
        _plan_field(plan, collection, principal, name)
    plan.order = [_order_path(collection, principal, key) for key in query.sort] + ["pk"]
    return plan


class RightsGuard(Guard):
    """A filter under ``principal``'s rights: the fields it may read, through the relations to collections it may
    view. For everyone but superusers every refusal is ``FORBIDDEN`` naming what was asked for, whether it exists
    or not: a hidden field is refused as an absent one, and a relation to a collection they may not view as a
    field that is not a relation (a plain key, whose operators compare the key)."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def vet(self, model: type[models.Model], name: str) -> None:
        target = registry.for_model(model)
        if target is None or not self.principal.has_perm(target, "view"):
            # Only superusers get here (through a relation to an unregistered model): ``follows`` stops the others.
            raise no_access(target.name if target else model._meta.model_name)
        if name != "pk" and name not in self.principal.readable(target):
            # Named by collection, as unknown fields in "fields" and "sort" are (the compiler names the model).
            exists = target.model_field(name) is not None or name in _all_field_names(model)
            raise unusable_field(self.principal, target, name, exists=exists)

    def follows(self, model: type[models.Model], relation: models.Field[Any, Any]) -> bool:
        if self.principal.is_superuser:
            return True  # a relation to an unregistered model is refused by ``vet``, naming the model
        target = registry.for_model(relation.related_model)  # type: ignore[arg-type]  # resolved: a model class
        return target is not None and self.principal.has_perm(target, "view")

    def refuse_path(self, model: type[models.Model], key: str, label: str) -> Exception | None:
        if self.principal.is_superuser:
            return None  # the compiler's own: the field is not a relation
        collection = registry.for_model(model)
        assert collection is not None  # vetted before the compiler asks
        return field_forbidden(collection, key)

    def visible(self, model: type[models.Model]) -> Q | None:
        target = registry.for_model(model)  # followed, so registered (or the principal is a superuser: no rule)
        return None if target is None else self.principal.row_q(target)


def _all_field_names(model: type[models.Model]) -> set[str]:
    return {f.name for f in model._meta.get_fields()}


def _plan_field(plan: ReadPlan, collection: Collection, principal: Principal, name: str) -> None:
    head, _, rest = name.partition(".")
    if head == "*" and not rest:
        for field_name in collection.fields:
            if field_name in principal.readable(collection):
                _add(plan, (field_name,), field_name)
        return
    if "." in rest:
        raise InvalidQuery(f'Field "{name}": only one level of relation is supported.')
    model_field = _readable_field(collection, principal, head)
    if not rest:
        _add(plan, (head,), head)
        return
    target = _related(collection, principal, model_field, name)
    rule = principal.row_q(target)
    if rule is not None:
        plan.nested_rules[head] = (target, rule)
    _add(plan, None, head)  # the related key: null relations and the related row rule
    names = [n for n in target.fields if n in principal.readable(target)] if rest == "*" else [rest]
    for sub in names:
        _readable_field(target, principal, sub)
        _add(plan, (head, sub), f"{head}__{sub}")


def _add(plan: ReadPlan, output: tuple[str, ...] | None, path: str) -> None:
    if path not in plan.paths:
        plan.paths.append(path)
    if output is not None and output not in plan.output:
        plan.output.append(output)


def _readable_field(collection: Collection, principal: Principal, name: str) -> models.Field[Any, Any]:
    model_field = collection.model_field(name)
    if model_field is None or model_field.name not in principal.readable(collection):
        raise unusable_field(principal, collection, name, exists=model_field is not None)
    return model_field


def _related(
    collection: Collection, principal: Principal, model_field: models.Field[Any, Any], name: str
) -> Collection:
    """The collection ``name`` (``head.rest``) reads through ``model_field``, its readable ``head``.

    Everyone but superusers gets one error for a field that is not a relation and for a relation to a collection
    they may not view (or that is not registered), so it does not tell which of the two ``head`` is.
    """
    target = None
    if model_field.is_relation:  # a collection's fields are concrete: a relation among them is a forward one
        target = registry.for_model(model_field.related_model)  # type: ignore[arg-type]  # resolved: a model class
    if target is not None and principal.has_perm(target, "view"):
        return target
    if principal.is_superuser and not model_field.is_relation:
        raise InvalidQuery(f'Field "{model_field.name}" of collection "{collection.name}" is not a relation.')
    raise field_forbidden(collection, name)


def _order_path(collection: Collection, principal: Principal, key: str) -> str | OrderBy:
    """The ``order_by`` argument of the sort ``key``: a field, or a field of a related row.

    A related row the principal's row rule hides sorts as if the value were NULL (as the frame shows it: the
    relation is ``null``), so the order tells nothing of hidden values. A relation itself sorts by its key, the
    value the frame shows, not by the related model's ``Meta.ordering`` (which may read any of its fields).
    """
    descending = key.startswith("-")
    name = key.lstrip("-")
    head, _, rest = name.partition(".")
    if "." in rest:
        raise InvalidQuery(f'Sort key "{name}": only one level of relation is supported.')
    model_field = _readable_field(collection, principal, head)
    path = model_field.attname
    if rest:
        target = _related(collection, principal, model_field, name)
        related_field = _readable_field(target, principal, rest)
        path = f"{head}__{rest}"
        rule = principal.row_q(target)
        if rule:
            return _hidden_as_null(model_field, path, rule, related_field, descending=descending)
    return f"-{path}" if descending else path


def _hidden_as_null(
    relation: models.Field[Any, Any], path: str, rule: Q, output: models.Field[Any, Any], *, descending: bool
) -> OrderBy:
    """Order by ``path``, the field ``output`` of the row related through ``relation``, or NULL where ``rule``
    hides that row."""
    foreign_key = cast("models.ForeignKey[Any, Any]", relation)  # a collection's relations are forward ones
    visible = visible_through(relation.name, foreign_key, rule, nullable=False)  # NULL: no row, the NULL it sorts as
    value = Case(When(visible, then=F(path)), default=Value(None), output_field=output)
    return value.desc() if descending else value.asc()


def scoped(plan: ReadPlan) -> QuerySet[Any]:
    return plan.collection.model._default_manager.filter(plan.condition)


def read(plan: ReadPlan, *, keys: Iterable[Any] | None = None, window: bool = True) -> list[dict[str, Any]]:
    """Rows of the plan (only ``keys`` when given), shaped as the requested fields."""
    queryset = scoped(plan)
    if keys is not None:
        queryset = queryset.filter(pk__in=list(keys))
    queryset = queryset.order_by(*plan.order)
    if window:
        queryset = queryset[plan.query.offset : plan.query.offset + plan.query.limit]
    rows = list(queryset.values(*plan.paths))
    hidden = _hidden_relations(plan, rows)
    return [_shape(plan, row, hidden) for row in rows]


def _hidden_relations(plan: ReadPlan, rows: list[dict[str, Any]]) -> dict[str, set[Any]]:
    """Related keys whose rows the principal's row rule on the related collection hides."""
    hidden: dict[str, set[Any]] = {}
    for relation, (target, rule) in plan.nested_rules.items():
        related = {row[relation] for row in rows if row[relation] is not None}
        visible = set(target.model._default_manager.filter(rule, pk__in=related).values_list("pk", flat=True))
        hidden[relation] = related - visible
    return hidden


def _shape(plan: ReadPlan, row: dict[str, Any], hidden: dict[str, set[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in plan.output:
        if len(path) == 1:
            if path[0] not in out:
                out[path[0]] = row[path[0]]
            continue
        relation, name = path
        if row[relation] is None or row[relation] in hidden.get(relation, ()):
            out[relation] = None
            continue
        nested = out.get(relation)
        if not isinstance(nested, dict):
            nested = out[relation] = {}
        nested[name] = row[f"{relation}__{name}"]
    return out


def read_committed(
    plan: ReadPlan, keys: tuple[Any, ...], rows: tuple[dict[str, Any] | None, ...]
) -> list[dict[str, Any]]:
    """What ``read(plan, keys=keys, window=False)`` gives, from ``rows``, the snapshots of the rows ``keys`` as
    their write committed them (``query.snapshot.committed_rows``), without the database: the row rule and filter
    evaluated in Python (``query.evaluate``, which agrees with the database or raises ``Unevaluable``), the fields
    taken from the snapshot, a related row hidden by its collection's rule shown as ``null``.

    Raises ``Unevaluable`` where only the database can answer: a row not captured, a rule or filter ``evaluate``
    cannot answer, a field the snapshot does not carry, a default manager that filters rows, or several rows to be
    put in an order other than by an integer key. The caller then reads the database (``read``).
    """
    model = plan.collection.model
    if not _plain_manager(model):
        raise Unevaluable(f"The default manager of {model.__name__} filters rows.")
    latest: dict[Any, dict[str, Any]] = {}  # a row written twice in one transaction: its last state
    for key, row in zip(keys, rows, strict=True):
        if row is None:
            raise Unevaluable("A row's committed state is not known.")
        latest[key] = row
    if len(latest) > 1:
        if plan.order != ["pk"] or not isinstance(model._meta.pk, models.AutoField | models.IntegerField):
            raise Unevaluable("Only the database knows the order of these rows.")
        latest = dict(sorted(latest.items()))
    vendor = connection.vendor
    found = []
    for row in latest.values():
        if not evaluate(plan.condition, row, vendor):
            continue
        values = {path: _snapshot_value(model, row, path) for path in plan.paths}
        hidden: dict[str, set[Any]] = {}
        for relation, (target, rule) in plan.nested_rules.items():
            related = row.get(relation)
            if not _plain_manager(target.model) or (related is not None and not isinstance(related, dict)):
                raise Unevaluable(f"Cannot tell whether the related row of {relation!r} is visible.")
            if related is not None and not evaluate(rule, related, vendor):
                hidden[relation] = {values[relation]}
        found.append(_shape(plan, values, hidden))
    return found


def _plain_manager(model: type[models.Model]) -> bool:
    """Whether the default manager reads every row (a snapshot cannot tell which rows a filtering one hides)."""
    return not model._default_manager.all().query.has_filters()


def _snapshot_value(model: type[models.Model], row: dict[str, Any], path: str) -> Any:
    """The value ``values(path)`` gives for the row of the snapshot ``row``: a field, a relation's key, or a field
    of the related row (one level)."""
    head, _, rest = path.partition("__")
    if head == "pk" and not rest:
        return row["pk"]
    field = _carried_field(model, row, head)
    value = row[head]
    if not rest:
        return _field_value(field, value)
    if "__" in rest or not field.is_relation or (value is not None and not isinstance(value, dict)):
        raise Unevaluable(f"Cannot follow {path!r} in the snapshot.")
    if value is None:
        return None  # a NULL relation: every field through it reads as NULL
    sub_field = _carried_field(cast("type[models.Model]", field.related_model), value, rest)
    return _field_value(sub_field, value[rest])


def _carried_field(model: type[models.Model], row: dict[str, Any], name: str) -> Any:
    """The field ``name`` of ``model`` (by its name, not its column), when the snapshot ``row`` carries it."""
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise Unevaluable(f"No field {name!r} in {model.__name__}.") from None
    if field.name != name or name not in row:
        raise Unevaluable(f"The snapshot of {model.__name__} does not carry {name!r}.")
    return field


def _field_value(field: Any, value: Any) -> Any:
    """A snapshot's value of ``field`` as ``values()`` gives it: a relation by the key its column holds."""
    if not field.is_relation or value is None:
        return value
    if not isinstance(value, dict) or field.target_field.name not in value:
        raise Unevaluable(f"The snapshot of {field.name!r} has no key.")
    return value[field.target_field.name]


def meta(plan: ReadPlan) -> dict[str, int]:
    result: dict[str, int] = {}
    if "total_count" in plan.query.meta:
        rule = plan.principal.row_q(plan.collection) or Q()
        result["total_count"] = plan.collection.model._default_manager.filter(rule).count()
    if "filter_count" in plan.query.meta:
        result["filter_count"] = scoped(plan).count()
    return result


def visible_deletes(plan: ReadPlan, keys: tuple[Any, ...], snapshots: tuple[dict[str, Any] | None, ...]) -> list[Any]:
    """The deleted keys this plan's principal could read and whose filter matched before deletion."""
    visible = []
    for key, before in zip(keys, snapshots or (None,) * len(keys), strict=True):
        if before is None:  # published without row values: only unconditional subscriptions may hear of it
            if not plan.condition:
                visible.append(key)
            continue
        try:
            if evaluate(plan.condition, before, connection.vendor):
                visible.append(key)
        except Unevaluable:
            continue  # a rule we cannot check on a snapshot: never leak the delete
    return visible
