"""Items: create, read, update and delete under a principal's rights (PROTOCOL §6), for the socket and HTTP.

Synchronous (database) code; every write runs in one transaction, validates with ``full_clean`` and publishes its
events through the ORM signals after commit (one event per operation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import ProtectedError, RestrictedError

from likha_realtime.access import reads
from likha_realtime.access.changes import track_changes
from likha_realtime.access.collections import registry
from likha_realtime.access.principal import Principal
from likha_realtime.conf import realtime_settings
from likha_realtime.query import parse_query
from likha_realtime.wire.errors import Forbidden, InvalidPayload, RecordNotUnique
from likha_realtime.wire.text import UNSTORABLE, storable

ACTION_PERMS = {"create": "add", "read": "view", "update": "change", "delete": "delete"}
NO_ITEM = "You don't have permission to access this item or it does not exist."


class Items:
    """One collection's items as ``principal`` may touch them; ``raw_query`` shapes returned rows."""

    def __init__(self, principal: Principal, collection_name: Any, action: str, raw_query: Any = None) -> None:
        self.principal = principal
        self.collection = reads.collection_for(principal, collection_name, ACTION_PERMS[action])
        if action != "read" and not principal.has_perm(self.collection, "view"):
            raise reads.no_access(collection_name)
        self.query = parse_query(
            raw_query, limit_default=realtime_settings.QUERY_LIMIT_DEFAULT, limit_max=realtime_settings.QUERY_LIMIT_MAX
        )
        self.plan = reads.plan_read(self.collection, principal, self.query)

    @property
    def model(self) -> type[models.Model]:
        return self.collection.model

    # -- reads -----------------------------------------------------------------------------------------------

    def read_one(self, key: Any) -> dict[str, Any]:
        rows = reads.read(self.plan, keys=[self.key(key)], window=False)
        if not rows:
            raise Forbidden(NO_ITEM)
        return rows[0]

    def read_many(self, keys: Iterable[Any] | None = None) -> list[dict[str, Any]]:
        if keys is None:
            return reads.read(self.plan)
        return reads.read(self.plan, keys=[self.key(k) for k in bounded(list(keys))], window=False)

    def meta(self) -> dict[str, int] | None:
        return reads.meta(self.plan) or None

    # -- writes ----------------------------------------------------------------------------------------------

    def create(self, data: Any) -> dict[str, Any] | list[dict[str, Any]]:
        writable(data)
        many = isinstance(data, list)
        rows = data if many else [data]
        if many and not rows:
            raise InvalidPayload('"data" must not be empty.')
        bounded(rows, "items")
        with transaction.atomic():
            keys = [self._save(self.model(), row) for row in rows]
        return self.read_many(keys) if many else self.read_one(keys[0])

    def update(self, keys: list[Any], data: Any, many: bool) -> dict[str, Any] | list[dict[str, Any]]:
        writable(data)
        bounded(keys)
        with transaction.atomic():
            for instance in self._visible(keys, lock=True):
                track_changes(instance)  # its event names the fields this write changed
                self._save(instance, data)
        return self.read_many(keys) if many else self.read_one(keys[0])

    def delete(self, keys: list[Any]) -> list[Any]:
        try:
            with transaction.atomic():
                instances = self._visible(keys, lock=True)
                self.model._default_manager.filter(pk__in=[i.pk for i in instances]).delete()
        except (ProtectedError, RestrictedError) as exc:  # on_delete=PROTECT/RESTRICT: a client error, not ours
            raise InvalidPayload(
                f'Items of collection "{self.collection.name}" cannot be deleted while other items reference them.'
            ) from exc
        return [instance.pk for instance in instances]

    def keys_matching(self) -> list[Any]:
        """Keys of the rows the query selects (delete by query): its window too (``limit``, by default
        ``QUERY_LIMIT_DEFAULT``; at most ``QUERY_LIMIT_MAX``), as a read with that query would return them."""
        query = self.plan.query
        ordered = reads.scoped(self.plan).order_by(*self.plan.order).values_list("pk", flat=True)
        return list(ordered[query.offset : query.offset + query.limit])

    # -- helpers ---------------------------------------------------------------------------------------------

    def key(self, raw: Any) -> Any:
        return self.collection.to_key(raw)

    def _visible(self, raw_keys: list[Any], lock: bool) -> list[models.Model]:
        keys = [self.key(k) for k in raw_keys]
        rule = self.principal.row_q(self.collection)
        queryset = self.model._default_manager.filter(pk__in=keys)
        if rule is not None:
            queryset = queryset.filter(rule)
        if lock:
            queryset = queryset.select_for_update()
        found = {instance.pk: instance for instance in queryset}
        if len(found) != len(set(keys)):
            raise Forbidden(NO_ITEM)
        return [found[k] for k in dict.fromkeys(keys)]

    def _save(self, instance: models.Model, data: Any) -> Any:
        if not isinstance(data, dict) or (not data and instance.pk is not None):
            raise InvalidPayload('"data" must be a non-empty object.')
        for name, value in data.items():
            self._assign(instance, name, value)
        try:
            instance.full_clean()
            # No savepoint of its own (two round trips per row): both callers hold a transaction, and a failed save
            # raises out of it, which rolls the whole write back.
            instance.save()
        except ValidationError as exc:
            raise _validation_error(exc) from exc
        except IntegrityError as exc:
            raise RecordNotUnique("Value has to be unique.") from exc
        rule = self.principal.row_q(self.collection)
        if rule is not None and not self.model._default_manager.filter(rule, pk=instance.pk).exists():
            raise Forbidden("You don't have permission to write this item.")
        return instance.pk

    def _assign(self, instance: models.Model, name: Any, value: Any) -> None:
        field = self.collection.model_field(name) if isinstance(name, str) else None
        if field is None or field.name not in self.principal.readable(self.collection):
            # Readability before anything else about the field: a hidden one is refused as an absent one.
            if self.principal.is_superuser:
                raise InvalidPayload(f'Unknown field "{name}" in collection "{self.collection.name}".')
            raise reads.field_forbidden(self.collection, str(name))
        if field.primary_key or not field.editable:
            raise InvalidPayload(f'Field "{name}" is read-only.')
        if field.is_relation and field.many_to_one:
            value = self._related_key(field, value)
            setattr(instance, field.attname, value)
            return
        setattr(instance, field.name, value)

    def _related_key(self, field: models.Field[Any, Any], value: Any) -> Any:
        if value is None:
            return None
        target = registry.for_model(field.related_model)  # type: ignore[arg-type]  # resolved: a model class
        invalid = InvalidPayload(f'Invalid value for field "{field.name}": no such item.')
        if target is None or not self.principal.has_perm(target, "view") or isinstance(value, bool):
            raise invalid
        try:
            key = target.model._meta.pk.to_python(value)
        except ValidationError as exc:
            raise invalid from exc
        visible = target.model._default_manager.filter(pk=key)
        rule = self.principal.row_q(target)
        if rule is not None:
            visible = visible.filter(rule)
        if not visible.exists():
            raise invalid
        return key


def _validation_error(exc: ValidationError) -> InvalidPayload | RecordNotUnique:
    errors = exc.error_dict if hasattr(exc, "error_dict") else {"__all__": exc.error_list}
    for name, problems in errors.items():
        for problem in problems:
            if problem.code == "unique" or problem.code == "unique_together":
                where = f'field "{name}"' if name != "__all__" else "these fields"
                return RecordNotUnique(f"Value for {where} has to be unique.")
        text = " ".join(str(message) for problem in problems for message in problem.messages)
        if name == "__all__":
            return InvalidPayload(f"Validation failed: {text}")
        return InvalidPayload(f'Validation failed for field "{name}": {text}')
    return InvalidPayload("Validation failed.")


def writable(data: Any) -> None:
    """``data`` of a create or update holds no text a database cannot take, keys (field names) included: refused
    before any field is looked up, so the answer does not depend on the fields the caller may read."""
    if not storable(data):
        raise InvalidPayload(f'"data" {UNSTORABLE}')


def bounded(values: list[Any], what: str = "keys") -> list[Any]:
    """``values`` (keys or rows of one request), refused over ``ITEMS_MAX_IDS`` before any of them is looked at."""
    limit = int(realtime_settings.ITEMS_MAX_IDS)
    if len(values) > limit:
        raise InvalidPayload(f"Too many {what}: at most {limit} per request, received {len(values)}.")
    return values


def selector(message: dict[str, Any]) -> tuple[str, Any]:
    """Which of ``id``, ``ids``, ``query`` a message selects rows by: ``("id", 5)``, ``("ids", [...])``, ..."""
    if "id" in message and message["id"] is not None:
        return "id", message["id"]
    if "ids" in message and message["ids"] is not None:
        ids = message["ids"]
        if not isinstance(ids, list) or not ids:
            raise InvalidPayload('"ids" must be a non-empty array.')
        return "ids", bounded(ids)
    if message.get("query") is not None:
        return "query", message["query"]
    return "none", None


DELETE_NEEDS_SELECTOR = "Either 'ids', 'id' or 'query' is required for a DELETE request."


def items_reply(principal: Principal, message: dict[str, Any]) -> dict[str, Any]:
    """The reply frame (without uid) for an ``items`` message; raises coded errors (sync: uses the DB)."""
    action = message.get("action")
    if not isinstance(action, str) or action not in ACTION_PERMS:
        raise InvalidPayload('Validation error: "action" must be one of "create", "read", "update", "delete".')
    if not isinstance(message.get("collection"), str):
        raise InvalidPayload('Validation error: "collection" must be a non-empty string.')
    how, selected = selector(message)
    data, meta = _RUN[action](principal, message, how, selected)
    reply: dict[str, Any] = {"type": "items", "data": data}
    if meta:
        reply["meta"] = meta
    return reply


def _create(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    if "data" not in message:
        raise InvalidPayload('"data" is required for a CREATE request.')
    return Items(principal, message["collection"], "create", message.get("query")).create(message["data"]), None


def _read(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    items = Items(principal, message["collection"], "read", message.get("query"))
    if how == "id":
        return items.read_one(selected), None
    if how == "ids":
        return items.read_many(selected), None
    return items.read_many(), items.meta()


def _update(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    if how not in ("id", "ids"):
        raise InvalidPayload("Either 'ids' or 'id' is required for an UPDATE request.")
    items = Items(principal, message["collection"], "update", message.get("query"))
    keys = [selected] if how == "id" else selected
    return items.update(keys, message.get("data"), many=how == "ids"), None


def _delete(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    if how == "none":
        raise InvalidPayload(DELETE_NEEDS_SELECTOR)
    items = Items(principal, message["collection"], "delete", selected if how == "query" else None)
    keys = [selected] if how == "id" else selected if how == "ids" else items.keys_matching()
    deleted = items.delete(keys)
    return (deleted[0] if how == "id" else deleted), None


_RUN = {"create": _create, "read": _read, "update": _update, "delete": _delete}
