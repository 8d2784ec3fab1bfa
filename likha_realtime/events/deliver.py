"""Delivering one event to this process's subscribers: one re-read per batch of equal reads (``sharing``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable
from typing import Any, Protocol

from channels.db import database_sync_to_async

from likha_realtime.access.collections import Collection
from likha_realtime.access.subscriptions import Subscription, event_payload
from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats
from likha_realtime.wire.codec import encode_json

logger = logging.getLogger(__name__)


class Subscriber(Protocol):
    """A connection holding subscriptions (the REST consumer)."""

    def subscriptions_for(self, collection: str) -> list[Subscription]: ...

    async def receive_event(self, subscription: Subscription, action: str, payload: Any, data_json: str) -> None:
        """Deliver one event's ``payload`` (rows, or keys for a delete; ``data_json`` is it encoded)."""


def batches(
    event: Event, subscribers: list[Subscriber]
) -> dict[tuple[Hashable, tuple[Any, ...]], list[tuple[Subscriber, Subscription]]]:
    """Subscriptions that hear ``event`` grouped by (batch key, the keys they hear of): one re-read per group."""
    grouped: dict[tuple[Hashable, tuple[Any, ...]], list[tuple[Subscriber, Subscription]]] = defaultdict(list)
    for subscriber in subscribers:
        for subscription in subscriber.subscriptions_for(event.collection):
            if not subscription.wants(event.action, event.keys):
                continue
            keys = heard_keys(subscription, event)
            if keys:
                grouped[(subscription.batch_key, keys)].append((subscriber, subscription))
    return grouped


def heard_keys(subscription: Subscription, event: Event) -> tuple[Any, ...]:
    """The rows of ``event`` this subscription hears of: for an update, those whose changed fields concern it."""
    if event.action != "update" or not event.changed:
        return event.keys
    return tuple(key for key, changed in zip(event.keys, event.changed, strict=True) if subscription.hears(changed))


@database_sync_to_async
def _payload(subscription: Subscription, event: Event, keys: tuple[Any, ...]) -> Any:
    return event_payload(subscription, event.action, keys, event.snapshots)


async def deliver(event: Event, collection: Collection, subscribers: list[Any]) -> None:
    for (_, keys), members in batches(event, subscribers).items():
        payload = await _payload(members[0][1], event, keys)
        if payload is None:
            continue
        data_json = encode_json(payload)  # once per batch: subscribers in it differ only by uid
        for subscriber, subscription in members:
            try:
                await subscriber.receive_event(subscription, event.action, payload, data_json)
            except Exception:  # one broken socket must not starve the others
                stats.delivery_errors += 1
                logger.exception("could not send a %s frame on %s", event.action, event.collection)
                continue
            stats.frames_sent += 1
