"""Publishing events: one ``group_send`` per event to the collection's group of server processes.

``publish()`` is the documented call for writes that send no model signals (``QuerySet.update``,
``bulk_create``, raw SQL): it follows the same after-commit path as ORM saves and deletes.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

from likha_realtime.collections import Collection, registry
from likha_realtime.events.model import ACTIONS, Event
from likha_realtime.events.stats import stats

logger = logging.getLogger(__name__)

EVENT_MESSAGE = "likha.event"
GROUP_PREFIX = "likha.events."
PUBLISHER_ID = uuid.uuid4().hex  # this process, as a publisher; receivers number its events to detect loss
_sequence = itertools.count(1)
_send_lock = threading.Lock()  # keeps this process's sequence numbers in send order


def group_name(collection: str) -> str:
    return GROUP_PREFIX + collection


def publish(
    target: str | type[Model] | Collection,
    action: str,
    keys: Iterable[Any],
    *,
    using: str = DEFAULT_DB_ALIAS,
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
    if keys:
        from likha_realtime.events.capture import record

        record(Event(collection.name, action, keys), using)


def _collection(target: str | type[Model] | Collection) -> Collection:
    if isinstance(target, Collection):
        return target
    found = registry.get(target) if isinstance(target, str) else registry.for_model(target)
    if found is None:
        raise LookupError(f"{target!r} is not a registered collection")
    return found


def publish_events(events: list[Event]) -> None:
    """Send committed events to every server process (never raises: the write has committed already)."""
    layer = get_channel_layer()
    if layer is None:
        return
    for event in events:
        try:
            with _send_lock:
                message = {
                    "type": EVENT_MESSAGE,
                    **event.to_message(),
                    "publisher": PUBLISHER_ID,
                    "seq": next(_sequence),
                }
                async_to_sync(layer.group_send)(group_name(event.collection), message)
            stats.published += 1
        except Exception:
            stats.publish_failures += 1
            logger.exception(
                "could not publish %s event on %s (%d keys)", event.action, event.collection, len(event.keys)
            )
