"""Event capture: ORM saves and deletes of registered models, and ``publish()`` calls, become events that are
published only after commit.

Each write registers its own ``transaction.on_commit`` hook, so writes inside a rolled-back transaction or
savepoint publish nothing. The hooks of one commit are coalesced: consecutive writes of the same collection and
action in one transaction become one event listing every key (one frame per write operation: an ``items``
update of several ids, a ``QuerySet.delete()``). Outside a transaction each save is its own event.

A create or update event the signals saw carries each row as it committed (once per model and commit: read inside
the transaction right before its commit on the project's PostgreSQL backend, ``likha_realtime.db.postgresql``,
while the transaction still holds the rows' locks; read right after the commit on other backends): its frames show
that state, not whatever a later write left by the time they are sent (issue 12), and never a state inside the
transaction. ``publish()`` carries keys only: its subscribers' frames are read
from the database when delivered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_delete

from likha_realtime.access.changes import changed_fields
from likha_realtime.access.collections import Collection, registry
from likha_realtime.db import precommit
from likha_realtime.events.model import Event
from likha_realtime.events.transport import publish_events
from likha_realtime.query import snapshot
from likha_realtime.query.snapshot import committed_rows
from likha_realtime.wire.events import ACTIONS

logger = logging.getLogger(__name__)
_local = threading.local()


class _Written(NamedTuple):
    event: Event
    using: str
    rows: bool  # a create or update the signals saw: its rows are read as committed, to travel with the event


def _pending() -> list[_Written]:
    if not hasattr(_local, "events"):
        _local.events = []
    events: list[_Written] = _local.events
    return events


class _Hook:
    """One write's on_commit hook: its event joins the commit's batch (dropped with a rolled-back savepoint)."""

    def __init__(self, written: _Written) -> None:
        self.written = written

    def __call__(self) -> None:
        _pending().append(self.written)


class _Flush:
    """Publishes the batch; kept after every ``_Hook`` in the connection's on_commit list."""

    def __call__(self) -> None:
        written, _local.events = _pending(), []
        if written:
            publish_events(coalesce(with_committed_rows(written)))


def with_committed_rows(written: list[_Written]) -> list[Event]:
    """The commit's events, each create and update the signals saw carrying its rows as committed: read before the
    commit inside the transaction where the backend allows (``read_before_commit``), else now, after the commit,
    once per model for the whole commit (``committed_rows``). Never a state inside the transaction (a row created
    then changed again, or changed by a ``QuerySet.update`` or raw SQL after its save, shows what committed). A read
    that fails costs the write nothing: those events carry no rows, and their subscribers' frames are read from the
    database when delivered."""
    read = _read_before(written)
    if read is None:
        read, _ = _read_rows(written)
    events = []
    for item in written:
        collection = registry.get(item.event.collection)
        rows = read.get((collection.model, item.using)) if item.rows and collection is not None else None
        event = item.event
        if rows is not None:
            event = replace(event, snapshots=tuple(rows.get(key) for key in event.keys))
        events.append(event)
    return events


Rows = dict[tuple[type[Model], str], dict[Any, dict[str, Any]]]


def _read_rows(written: list[_Written]) -> tuple[Rows, bool]:
    """The rows of the create and update events of ``written``, by model and database, one read per model; and
    whether a read failed (logged; that model's events carry no rows)."""
    wanted: dict[tuple[type[Model], str], set[Any]] = {}
    for item in written:
        collection = registry.get(item.event.collection)
        if item.rows and collection is not None:
            wanted.setdefault((collection.model, item.using), set()).update(item.event.keys)
    read: Rows = {}
    failed = False
    for (model, using), keys in wanted.items():
        try:
            read[(model, using)] = committed_rows(model, keys, using, _exposed)
        except Exception:
            failed = True
            logger.exception("could not read the committed rows of %s: its events are re-read when delivered", model)
    return read, failed


def read_before_commit(connection: BaseDatabaseWrapper) -> None:
    """``db.precommit`` callback (the project's PostgreSQL backend): inside the transaction, after its last write,
    read the rows its create and update events will carry. The transaction holds their row locks (it updated or
    inserted them), so no other commit can change them before this one: what is read is exactly what commits, where a
    read after the commit could see a later writer's state (two processes writing one row 30 times a second: 0.7-3 %
    of frames). Kept for the ``_Flush`` of this commit only (matched by its writes)."""
    written = [entry[1].written for entry in connection.run_on_commit if isinstance(entry[1], _Hook)]
    _local.before_commit = None
    if not any(item.rows for item in written) or _serializable(connection):
        return
    # After a savepoint, rolled back to if the read fails: a read that fails in the database (a statement timeout, a
    # serialization failure) must not leave the transaction aborted, which would turn its COMMIT into a silent
    # rollback of the write. A read that succeeds leaves it to the COMMIT, which releases it (no round trip).
    savepoint = connection.savepoint()
    rows, failed = _read_rows(written)  # a failed model's read is logged and left out: re-read when delivered
    if failed and savepoint is not None:
        connection.savepoint_rollback(savepoint)
    _local.before_commit = (written, rows)  # the writes themselves, not their ids: a freed one's id is reused


def forget_before_commit(connection: BaseDatabaseWrapper) -> None:
    """``db.precommit`` failure callback: the COMMIT failed, what was read before it never committed."""
    _local.before_commit = None


def _serializable(connection: BaseDatabaseWrapper) -> bool:
    """Under SERIALIZABLE isolation the extra read would add predicate locks (more serialization failures): the
    rows are then read after the commit, as on other backends."""
    level = getattr(connection, "isolation_level", None)
    return level is not None and "SERIALIZABLE" in str(getattr(level, "name", level)).upper()


def _read_before(written: list[_Written]) -> Rows | None:
    """The rows ``read_before_commit`` read for exactly these writes (this commit's), else ``None``."""
    kept, _local.before_commit = getattr(_local, "before_commit", None), None
    if kept is None or len(kept[0]) != len(written) or any(a is not b for a, b in zip(kept[0], written, strict=True)):
        return None
    rows: Rows = kept[1]
    return rows


_flush = _Flush()


def coalesce(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if merged and merged[-1].collection == event.collection and merged[-1].action == event.action:
            merged[-1] = merged[-1].merge(event)
        else:
            merged.append(event)
    return merged


def _exposed(model: type[Model]) -> frozenset[str] | None:
    """The fields of ``model`` a frame may ever show (its collection's), ``None`` when it is no collection."""
    collection = registry.for_model(model)
    return None if collection is None else frozenset(collection.fields)


def record(event: Event, using: str = DEFAULT_DB_ALIAS, *, rows: bool = False) -> None:
    """Publish ``event`` after the current transaction on ``using`` commits (at once outside a transaction);
    ``rows``: with its rows as they committed (``with_committed_rows``)."""
    transaction.on_commit(_Hook(_Written(event, using, rows)), using=using)
    if transaction.get_autocommit(using):  # no transaction: on_commit ran the hook already
        _flush()
    else:
        _keep_flush_last(connections[using])


def _keep_flush_last(connection: BaseDatabaseWrapper) -> None:
    """Moves the commit's ``_flush`` entry behind the hook just registered, or adds one there.

    Django has no public way to run code after the last on_commit hook of a commit: ``on_commit`` only appends,
    and Django runs the hooks in order from a list it detaches first, so no hook can tell whether it is the last.
    So this one function edits Django's private ``run_on_commit`` list of ``(savepoint ids, callable, robust)``
    entries, in O(1) per write. The flush entry holds no savepoint id, so no savepoint rollback drops it (Django
    drops the entries holding the rolled-back id); a full rollback clears it with the rest.
    tests/likha_realtime/events/test_capture_contract.py fails if Django changes any of this.
    """
    hooks = connection.run_on_commit
    if len(hooks) >= 2 and hooks[-2][1] is _flush:
        hooks[-2], hooks[-1] = hooks[-1], hooks[-2]
    else:
        # django-stubs still types these entries as Django < 4.2's (savepoint ids, callable) pairs.
        hooks.append((set(), _flush, False))  # type: ignore[arg-type]  # Django 5.2 stores 3-tuples; the stubs say 2


def _on_save(
    sender: type[Model],
    instance: Model,
    created: bool,
    raw: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    update_fields: Iterable[str] | None = None,
    **kwargs: Any,
) -> None:
    collection = registry.for_model(sender)
    if collection is None or raw:
        instance.__dict__.pop("_likha_before", None)
        return
    if created:
        instance.__dict__.pop("_likha_before", None)
        record(Event(collection.name, "create", (instance.pk,)), using, rows=True)
        return
    fields = changed_fields(instance, update_fields)
    record(Event(collection.name, "update", (instance.pk,), changed=(fields,)), using, rows=True)


def _on_pre_delete(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    collection = registry.for_model(sender)
    if collection is None:
        return
    instance._likha_snapshot = snapshot(instance)  # type: ignore[attr-defined]  # pre-delete snapshot carried to post_delete


def _on_delete(sender: type[Model], instance: Model, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    collection = registry.for_model(sender)
    if collection is None:
        return
    before = getattr(instance, "_likha_snapshot", None)
    record(Event(collection.name, "delete", (instance.pk,), (before,) if before is not None else ()), using)


def connect_signals() -> None:
    precommit.before_commit(read_before_commit, failed=forget_before_commit)
    post_save.connect(_on_save, dispatch_uid="likha_realtime_save")
    pre_delete.connect(_on_pre_delete, dispatch_uid="likha_realtime_pre_delete")
    post_delete.connect(_on_delete, dispatch_uid="likha_realtime_delete")


def publish(
    target: str | type[Model] | Collection,
    action: str,
    keys: Iterable[Any],
    *,
    using: str = DEFAULT_DB_ALIAS,
    fields: Iterable[str] | None = None,
) -> None:
    """Announce ``action`` (create, update, delete) on the rows ``keys`` of a registered collection or model.

    Sent after the current transaction commits, like ORM writes. ``QuerySet.delete()`` needs no call (it sends
    model signals). A delete published here carries keys only, so it reaches only subscribers whose filter and
    row rules need no row values (no filter, no row rule): a delete is never sent where it cannot be checked.
    """
    collection = _collection(target)
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    keys = tuple(keys)
    changed = None
    if fields is not None and action == "update":
        options = collection.model._meta
        changed = frozenset(options.get_field(name).name for name in fields)  # FieldDoesNotExist: a typo, loudly
    if keys:
        record(Event(collection.name, action, keys, changed=() if changed is None else (changed,) * len(keys)), using)


def _collection(target: str | type[Model] | Collection) -> Collection:
    if isinstance(target, Collection):
        return target
    found = registry.get(target) if isinstance(target, str) else registry.for_model(target)
    if found is None:
        raise LookupError(f"{target!r} is not a registered collection")
    return found
