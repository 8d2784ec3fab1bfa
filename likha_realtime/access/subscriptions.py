"""Subscriptions of the REST socket (PROTOCOL §5): validation, the init read, and the frames they receive."""

from __future__ import annotations

import json
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from likha_realtime.access import reads, sharing
from likha_realtime.access.principal import Principal
from likha_realtime.conf import realtime_settings
from likha_realtime.query import Unevaluable, parse_query
from likha_realtime.wire.errors import Forbidden, InvalidPayload, InvalidQuery
from likha_realtime.wire.events import ACTIONS


@dataclass(frozen=True)
class Subscription:
    uid: str | None  # echoed as a string in subscription frames
    collection: str
    raw_query: Any
    event: str | None  # only this action; also means "no init data"
    item: Any  # one row's key, as the primary key's Python value (matched as a string)
    plan: reads.ReadPlan | None  # None while the connection's rights cannot read it (suspended)
    # Subscriptions with equal batch keys receive identical data for every event: one re-read serves them all.
    batch_key: Hashable = ()
    # The fields whose change this subscription hears of in an update (``None``: any change), see ``sharing``.
    watched: frozenset[str] | None = None
    # When its init read began (``time.monotonic()``; 0: hears everything): an event this process received before
    # then is already in the init, and its frame (the row as that write committed it) could be older than the init.
    since: float = 0.0

    @property
    def item_key(self) -> str | None:
        return None if self.item is None else str(self.item)

    def wants(self, action: str, key_strings: frozenset[str]) -> bool:
        """Whether an event of ``action`` on the rows whose keys (as strings) are ``key_strings`` is for this
        subscription at all (its action, its item; not yet which fields changed: ``hears``)."""
        if self.plan is None or (self.event is not None and self.event != action):
            return False
        return self.item is None or self.item_key in key_strings

    def heard_before(self, received: float | None) -> bool:
        """Whether an event received (by this process) at ``received`` came before this subscription's init read."""
        return received is not None and received < self.since

    def hears(self, changed: frozenset[str] | None) -> bool:
        """Whether an update of a row that changed the fields ``changed`` (``None``: unknown) concerns this
        subscription: one that changed only fields it neither shows nor tests sends it nothing (PROTOCOL §5)."""
        if changed is None or self.watched is None:
            return True
        return not self.watched.isdisjoint(changed)

    def frame_text(self, event: str, data_json: str) -> str:
        """The event frame as JSON text around already encoded ``data`` (encoded once for a whole batch)."""
        uid = "" if self.uid is None else f',"uid":{json.dumps(self.uid)}'
        return f'{{"type":"subscription","event":"{event}","data":{data_json}{uid}}}'

    def frame(
        self, event: str, data: Any = None, meta: dict[str, int] | None = None, *, with_data: bool = True
    ) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "subscription", "event": event}
        if with_data:
            frame["data"] = data
        if meta:
            frame["meta"] = meta
        if self.uid is not None:
            frame["uid"] = self.uid
        return frame


def removed() -> Forbidden:
    """The error that ends a subscription which new rights (a login, a change of groups or permissions) cannot
    read: the REST socket's error frame for its uid, the GraphQL socket's ``error`` message for its operation."""
    return Forbidden("Subscription removed: the new credentials cannot read it.")


def parse_subscribe(message: dict[str, Any]) -> tuple[str, Any, str | None, Any]:
    """``(collection, query, event, item)`` of a subscribe message; ``InvalidPayload`` naming the bad key."""
    collection = message.get("collection")
    if not isinstance(collection, str) or not collection:
        raise InvalidPayload('Validation error: "collection" must be a non-empty string.')
    event = message.get("event")
    if event is not None and event not in ACTIONS:
        raise InvalidPayload('Validation error: "event" must be one of "create", "update", "delete".')
    item = message.get("item")
    if item is not None and (isinstance(item, bool) or not isinstance(item, str | int)):
        raise InvalidPayload('Validation error: "item" must be a string or an integer key.')
    query = message.get("query")
    if query is not None and not isinstance(query, dict):
        raise InvalidPayload('Validation error: "query" must be an object.')
    return collection, query, event, item


def prepare(principal: Principal, message: dict[str, Any]) -> Subscription:
    """Validate and authorize a subscribe message (sync: may read the user's rights): the subscription, planned,
    before its init read (``begin`` it, then read ``init_frame``)."""
    collection_name, raw_query, event, item = parse_subscribe(message)
    uid = message.get("uid")
    subscription = Subscription(None if uid is None else str(uid), collection_name, raw_query, event, item, None)
    plan = plan_for(principal, collection_name, raw_query)
    if item is not None:  # one spelling per key ("05", "5" and 5 alike), as events carry it
        subscription = replace(subscription, item=plan.collection.to_key(item))
    return with_plan(subscription, plan)


def begin(subscription: Subscription) -> Subscription:
    """``subscription`` hearing from now on (``since``): an event this process received earlier is in the init
    read that follows; one received later may be newer than what that read shows, and is its."""
    return replace(subscription, since=time.monotonic())


def with_plan(subscription: Subscription, plan: reads.ReadPlan | None) -> Subscription:
    if plan is None:
        return replace(subscription, plan=None, batch_key=(), watched=None)
    watched = sharing.watched_fields(plan)
    key = (sharing.plan_key(plan), subscription.item_key, watched)  # sync: compiles the plan's SQL
    return replace(subscription, plan=plan, batch_key=key, watched=watched)


def plan_for(principal: Principal, collection_name: str, raw_query: Any) -> reads.ReadPlan:
    collection = reads.collection_for(principal, collection_name)
    query = parse_query(
        raw_query,
        limit_default=realtime_settings.QUERY_LIMIT_DEFAULT,
        limit_max=realtime_settings.QUERY_LIMIT_MAX,
    )
    return reads.plan_read(collection, principal, query)


def init_frame(subscription: Subscription) -> dict[str, Any]:
    plan = subscription.plan
    assert plan is not None
    if subscription.event is not None:
        return subscription.frame("init", with_data=False)
    if subscription.item is not None:
        rows = reads.read(plan, keys=[subscription.item], window=False)
        return subscription.frame("init", rows[0] if rows else None)
    return subscription.frame("init", reads.read(plan), reads.meta(plan) or None)


def replan(subscription: Subscription, principal: Principal) -> Subscription:
    """The subscription under new rights; ``plan`` is None when they cannot read it."""
    try:
        plan = plan_for(principal, subscription.collection, subscription.raw_query)
    except (Forbidden, InvalidQuery):
        plan = None
    return with_plan(subscription, plan)


def event_payload(subscription: Subscription, action: str, keys: tuple[Any, ...], snapshots: tuple[Any, ...]) -> Any:
    """What this subscription's frame carries for an event (sync: reads the database for a create or update);
    ``None`` when nothing is left to send. ``snapshots``: each row's state, aligned with ``keys``, or empty."""
    plan = subscription.plan
    assert plan is not None
    keys, snapshots = _own_rows(subscription, keys, snapshots)
    if action == "delete":
        return _deleted(subscription, reads.visible_deletes(plan, keys, snapshots))
    return _rows(subscription, reads.read(plan, keys=keys, window=False))


def committed_payload(
    subscription: Subscription, action: str, keys: tuple[Any, ...], snapshots: tuple[Any, ...]
) -> Any:
    """``event_payload`` from the rows' snapshots alone, without the database: a create's or update's rows as their
    write committed them (``reads.read_committed``). Raises ``Unevaluable`` where only a database read can answer
    (then ``event_payload``)."""
    plan = subscription.plan
    assert plan is not None
    keys, snapshots = _own_rows(subscription, keys, snapshots)
    if action == "delete":
        return _deleted(subscription, reads.visible_deletes(plan, keys, snapshots))
    if not snapshots:
        raise Unevaluable("The event carries no row states.")
    return _rows(subscription, reads.read_committed(plan, keys, snapshots))


def _own_rows(
    subscription: Subscription, keys: tuple[Any, ...], snapshots: tuple[Any, ...]
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The keys (and snapshots) of the event's rows that concern ``subscription``: all, or its item's."""
    if subscription.item is None:
        return keys, snapshots
    pairs = [
        (k, s) for k, s in zip(keys, snapshots or (None,) * len(keys), strict=False) if str(k) == subscription.item_key
    ]
    return tuple(k for k, _ in pairs), (tuple(s for _, s in pairs) if snapshots else ())


def _deleted(subscription: Subscription, visible: list[Any]) -> Any:
    if not visible:
        return None
    return visible[0] if subscription.item is not None else visible


def _rows(subscription: Subscription, rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return None
    return rows[0] if subscription.item is not None else rows
