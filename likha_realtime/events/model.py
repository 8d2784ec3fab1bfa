"""``Event``: one write operation on one collection, and its JSON-safe wire form for the channel layer."""

from __future__ import annotations

import datetime
import decimal
import json
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast, overload

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models


class ExactEncoder(json.JSONEncoder):
    """JSON for field values without loss (DjangoJSONEncoder truncates datetimes to milliseconds)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.date | datetime.time):
            return o.isoformat()
        if isinstance(o, decimal.Decimal | uuid.UUID):
            return str(o)
        return super().default(o)


@dataclass(frozen=True)
class Event:
    collection: str
    action: str  # create | update | delete
    keys: tuple[Any, ...]
    # Each row's state, aligned with ``keys`` (or empty: none known): for a delete the row as it was, for a create or
    # an update the row as the write committed it (``query.snapshot.committed_rows``); ``None`` for a row whose state
    # is not known (its subscribers' frames are then read from the database).
    snapshots: tuple[dict[str, Any] | None, ...] = ()
    # update only, aligned with ``keys``: the names of the fields the write changed in each row (``None``: not
    # known, maybe any); empty when known for none of them. Per row: one row's change must not announce another's.
    changed: tuple[frozenset[str] | None, ...] = ()
    # When this process took it from its channel (``time.monotonic()``), ``None`` when not known: a subscription
    # whose init read began later already showed it (``Subscription.since``), and does not hear of it.
    received: float | None = field(default=None, compare=False)
    # When it was published, right after its write committed (``time.time()``: comparable between the processes of
    # one host, and of hosts whose clocks agree); ``None`` when not known. The commit-to-send latency metric.
    published: float | None = field(default=None, compare=False)

    def merge(self, other: Event) -> Event:
        changed = () if not self.changed and not other.changed else self.changes() + other.changes()
        snapshots = () if not self.snapshots and not other.snapshots else self.states() + other.states()
        keys = self.keys + other.keys
        return Event(self.collection, self.action, keys, snapshots, changed, self.received, self.published)

    @cached_property
    def key_strings(self) -> frozenset[str]:
        """The keys as strings (item subscriptions match them so), computed once per event for all subscribers."""
        return frozenset(str(key) for key in self.keys)

    def changes(self) -> tuple[frozenset[str] | None, ...]:
        """The changed fields of each row, aligned with ``keys``."""
        return self.changed or (None,) * len(self.keys)

    def states(self) -> tuple[dict[str, Any] | None, ...]:
        """Each row's snapshot (``None``: not known), aligned with ``keys``."""
        return self.snapshots or (None,) * len(self.keys)

    def to_message(self) -> dict[str, Any]:
        """Channel-layer payload (msgpack carries no Decimal or datetime: values travel as JSON text)."""
        return {
            "collection": self.collection,
            "action": self.action,
            "keys": json.dumps(list(self.keys), cls=ExactEncoder),
            "snapshots": json.dumps(list(self.snapshots), cls=ExactEncoder),
            "changed": [None if fields is None else sorted(fields) for fields in self.changed],
            "at": time.time(),
        }

    @classmethod
    def from_message(cls, message: dict[str, Any], model: type[models.Model], received: float | None = None) -> Event:
        pk_field = model._meta.pk
        keys = tuple(pk_field.to_python(key) for key in json.loads(message["keys"]))
        snapshots = tuple(retype(model, row) for row in json.loads(message["snapshots"]))
        if snapshots and len(snapshots) != len(keys):  # not aligned (a publisher of another version): not used
            snapshots = ()
        rows = message.get("changed")
        changed: tuple[frozenset[str] | None, ...] = ()
        if isinstance(rows, list) and len(rows) == len(keys):
            changed = tuple(frozenset(map(str, row)) if isinstance(row, list) else None for row in rows)
        at = message.get("at")
        published = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None
        return cls(message["collection"], message["action"], keys, snapshots, changed, received, published)


@overload
def retype(model: type[models.Model], row: dict[str, Any]) -> dict[str, Any]: ...
@overload
def retype(model: type[models.Model], row: None) -> None: ...


def retype(model: type[models.Model], row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A snapshot decoded from JSON with each value back in its field's Python type."""
    if row is None:
        return None
    typed: dict[str, Any] = {}
    for name, value in row.items():
        if name == "pk":
            typed[name] = model._meta.pk.to_python(value)
            continue
        try:
            # Snapshots hold concrete fields only (no reverse relation, no generic foreign key).
            field = cast(models.Field, model._meta.get_field(name))
        except FieldDoesNotExist:
            continue  # a field the model no longer has (publisher on an older schema)
        try:
            if field.is_relation and isinstance(value, dict):  # a foreign key's or a one-to-one's related row
                typed[name] = retype(field.related_model, value)  # type: ignore[arg-type]  # resolved: a model class
            elif value is None:
                typed[name] = None
            else:
                typed[name] = field.to_python(value)
        except (ValidationError, TypeError, ValueError):
            continue  # not this field's value (a publisher on another schema): left out, not the whole event lost
    return typed
