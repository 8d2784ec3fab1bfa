"""Events between processes: one ``group_send`` per committed event to the collection's group of server processes."""

from __future__ import annotations

import itertools
import logging
import threading
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats

logger = logging.getLogger(__name__)

EVENT_MESSAGE = "likha.event"
GROUP_PREFIX = "likha.events."
PUBLISHER_ID = uuid.uuid4().hex  # this process, as a publisher; receivers number its events to detect loss
_sequence = itertools.count(1)
_send_lock = threading.Lock()  # keeps this process's sequence numbers in send order


def group_name(collection: str) -> str:
    return GROUP_PREFIX + collection


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
