"""The oracle of the differential delivery test: what each subscription's frame for an event must be, read for that
subscription alone, under a principal built afresh from the database, with a plan of its own.

Nothing here goes through ``Subscription``, ``event_payload`` or ``deliver``: creates and updates are re-read with
``reads.read`` on a fresh plan; deletes are judged by what that plan read before the delete (not on snapshots).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from django.db.models import Q

from erp_demo.models import User
from likha_realtime.access import reads
from likha_realtime.access.collections import registry
from likha_realtime.access.principal import Principal
from likha_realtime.access.subscriptions import Subscription
from likha_realtime.conf import realtime_settings
from likha_realtime.events.model import Event
from likha_realtime.query import parse_query
from likha_realtime.wire.codec import encode_json

Frame = tuple[str, Any, str]  # (action, payload, data_json) as ``receive_event`` got them


def concerns(changed: frozenset[str] | None, watched: frozenset[str]) -> bool:
    """Whether an update of a row concerns a subscription: it changed a field the subscription shows or tests
    (``watched``), or which fields it changed is not known (the event does not say: any may have). An update of
    other fields only sends that subscription nothing (PROTOCOL §5)."""
    return changed is None or not changed.isdisjoint(watched)


@dataclass(frozen=True)
class Expected:
    payload: Any  # what the one frame carries; None: no frame at all

    def allows(self, action: str, frames: list[Frame]) -> bool:
        if self.payload is None:
            return frames == []
        return frames == [(action, self.payload, encode_json(self.payload))]


NOTHING = Expected(None)


@dataclass(eq=False)
class Listener:
    """A connection as ``deliver`` sees it (``subscriptions_for``, ``receive_event``), recording what it receives."""

    label: str
    subscriptions: list[tuple[Subscription, dict[str, Any]]] = field(default_factory=list)  # with their messages
    received: list[tuple[Subscription, Frame]] = field(default_factory=list)

    def subscriptions_for(self, collection: str) -> list[Subscription]:
        return [subscription for subscription, _ in self.subscriptions if subscription.collection == collection]

    async def receive_event(self, subscription: Subscription, action: str, payload: Any, data_json: str) -> None:
        self.received.append((subscription, (action, payload, data_json)))

    def frames(self, subscription: Subscription) -> list[Frame]:
        return [frame for sent_to, frame in self.received if sent_to is subscription]


class Oracle:
    def __init__(self, users: dict[str, int | None]) -> None:
        self.users = users  # label -> user key (None: the public role)

    def principal(self, label: str) -> Principal:
        """Built afresh: the user and its permissions re-read, no cache shared with any subscription."""
        key = self.users[label]
        return Principal(None if key is None else User.objects.get(pk=key))

    def plan(self, label: str, message: dict[str, Any]) -> reads.ReadPlan:
        principal = self.principal(label)
        collection = reads.collection_for(principal, message["collection"])
        query = parse_query(
            message.get("query"),
            limit_default=realtime_settings.QUERY_LIMIT_DEFAULT,
            limit_max=realtime_settings.QUERY_LIMIT_MAX,
        )
        return reads.plan_read(collection, principal, query)

    def rows(self, label: str, message: dict[str, Any], keys: list[Any]) -> list[dict[str, Any]]:
        return reads.read(self.plan(label, message), keys=keys, window=False)

    def visible(self, label: str, message: dict[str, Any], keys: tuple[Any, ...]) -> set[Any]:
        """The keys among ``keys`` whose rows this subscription reads now (before a delete)."""
        return {key for key in keys if self.rows(label, message, [key])}

    def watched(self, label: str, message: dict[str, Any]) -> frozenset[str]:
        """The fields of the subscribed collection the subscription shows (a relation by its key) or tests (its
        filter, its principal's row rule)."""
        principal = self.principal(label)
        collection = registry.get(message["collection"])
        assert collection is not None
        query = message.get("query") or {}
        names: set[str] = set()
        for name in query.get("fields", ["*"]):
            head = name.partition(".")[0]
            names |= set(principal.readable(collection)) if head == "*" else {head}
        return frozenset(names | _filter_fields(query.get("filter")) | _q_fields(principal.row_q(collection)))

    def expected(
        self,
        label: str,
        message: dict[str, Any],
        event: Event,
        changed: Mapping[Any, frozenset[str] | None],
        before: set[Any],
    ) -> Expected:
        """The frame of ``event`` for one subscription (``changed``: an update's changed fields per row where the
        event knows them, else ``None``; ``before``: the deleted keys the subscription read before the delete)."""
        if message["collection"] != event.collection or message.get("event", event.action) != event.action:
            return NOTHING
        item = message.get("item")
        keys = [key for key in event.keys if item is None or str(key) == str(item)]
        if event.action == "update":
            watched = self.watched(label, message)
            keys = [key for key in keys if concerns(changed.get(key), watched)]
        if not keys:
            return NOTHING
        found: list[Any] = (
            [key for key in keys if key in before] if event.action == "delete" else self.rows(label, message, keys)
        )
        if not found:
            return NOTHING
        return Expected(found[0] if item is not None else found)


def _filter_fields(raw: Any) -> set[str]:
    """Top-level field names a filter tests (``customer.name`` and ``{"customer": {...}}`` test ``customer``)."""
    names: set[str] = set()
    for key, value in (raw or {}).items():
        if key in ("_and", "_or"):
            for part in value:
                names |= _filter_fields(part)
        else:
            names.add(key.partition(".")[0])
    return names


def _q_fields(q: Q | None) -> set[str]:
    names: set[str] = set()
    for child in q.children if q is not None else ():
        if isinstance(child, Q):
            names |= _q_fields(child)
        else:  # a (lookup, value) pair
            lookup, _ = cast("tuple[str, Any]", child)
            names.add(lookup.split("__", 1)[0])
    return names
