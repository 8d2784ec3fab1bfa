"""Events between processes: one ``group_send`` per committed event to the collection's group of server processes.

Publishing runs in the writer's ``on_commit`` hook, so it must never make a write slow or fail. Each call to the
channel layer is bounded (``CHANNEL_LAYER_TIMEOUT``). After a failure publishing *pauses* (a circuit breaker): the
failed event and the ones that follow are held back in order (at most ``CHANNEL_LAYER_PUBLISH_BUFFER``; more are
dropped and counted) without touching Redis, so writers pay nothing; a background thread tries the channel layer
every ``CHANNEL_LAYER_RETRY`` seconds and, once it answers, sends what was held back and resumes direct publishing.
On Redis every ``group_send`` runs on the process's sender loop (a daemon thread), never on the server's loop,
whose turns a thousand sockets share (docs/RELIABILITY.md, "Soak"). Each event carries its publisher and a
per-collection sequence number, so receivers notice lost events
(``events/fanout.py``); an event sent after dropped ones carries ``"lost": true``. docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from likha_realtime.conf import realtime_settings
from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats
from likha_realtime.faults import FaultLog, call_layer, retry_seconds

logger = logging.getLogger(__name__)

EVENT_MESSAGE = "likha.event"
GROUP_PREFIX = "likha.events."
PROBE_GROUP = "likha.probe"  # no member: a group_send to it only asks Redis to answer
PROBE_MESSAGE = {"type": "likha.probe"}
PUBLISHER_ID = uuid.uuid4().hex  # this process, as a publisher; receivers number its events to detect loss


def group_name(collection: str) -> str:
    return GROUP_PREFIX + collection


_sender: asyncio.AbstractEventLoop | None = None
_sender_lock = threading.Lock()


def sender_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for publishing to Redis, on a daemon thread started on first use."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="likha-publish", daemon=True).start()
            _sender = loop
        return _sender


def _start_daemon(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="likha-publish-retry", daemon=True).start()


class Publisher:
    """This process's publishing: sequence numbers, the pause after a failure, and the events held back meanwhile.

    ``layer``, ``start_thread`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        layer: Callable[[], Any] = get_channel_layer,
        start_thread: Callable[[Callable[[], None]], None] = _start_daemon,
        sleep: Callable[[float], None] = time.sleep,
        publisher_id: str = PUBLISHER_ID,
    ) -> None:
        self._layer = layer
        self._start_thread = start_thread
        self._sleep = sleep
        self.publisher_id = publisher_id
        self._lock = threading.Lock()  # sequence numbers in send order, and the pause state
        self._sequences: dict[str, Iterator[int]] = {}
        self.paused = False
        self.held: deque[tuple[str, dict[str, Any]]] = deque()  # (group, message) in order, while paused
        self._lossy: set[str] = set()  # collections whose next event must say that earlier ones were dropped
        self.faults = FaultLog(logger, "publishing events", counted="event(s) held back or dropped")

    def publish(self, events: list[Event]) -> None:
        """Send committed events to every server process (never raises: the write has committed already)."""
        layer = self._layer()
        if layer is None:
            return
        for event in events:
            with self._lock:
                group, message = group_name(event.collection), self._message(event)
                if self.paused:
                    self._hold(group, message)
                    continue
                try:
                    self._send(layer, group, message)
                except Exception as error:
                    stats.add("publish_failures")
                    self._pause(layer, error)
                    self._hold(group, message)  # at least once: it goes again, first, when Redis answers
                    continue
                stats.add("published")

    def _send(self, layer: Any, group: str, message: dict[str, Any]) -> None:
        """One bounded ``group_send``. On a Redis layer it runs on this process's sender loop (a thread of its own):
        on the server's loop each of its Redis round trips waits for a turn of a loop busy with a thousand sockets,
        and writers queue behind the lock meanwhile, each holding its pooled database connection, until the sockets'
        database work finds no connection left (the soak's stall). The in-memory layer lives on the server's loop."""
        send = partial(layer.group_send, group, message)
        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(call_layer)(send)
        else:
            asyncio.run_coroutine_threadsafe(call_layer(send), sender_loop()).result()

    def _message(self, event: Event) -> dict[str, Any]:
        sequence = self._sequences.setdefault(event.collection, itertools.count(1))
        message = {"type": EVENT_MESSAGE, **event.to_message(), "publisher": self.publisher_id, "seq": next(sequence)}
        if event.collection in self._lossy:
            self._lossy.discard(event.collection)
            message["lost"] = True
        return message

    def _hold(self, group: str, message: dict[str, Any]) -> None:
        if len(self.held) < realtime_settings.CHANNEL_LAYER_PUBLISH_BUFFER:
            self.held.append((group, message))
            stats.add("publish_deferred")
        else:
            stats.add("publish_dropped")
            self._lossy.add(message["collection"])
        self.faults.count()

    def _pause(self, layer: Any, error: BaseException) -> None:
        self.paused = True
        self.faults.failed(error, f"; publishing paused, retried every {retry_seconds():g}s")
        self._start_thread(lambda: self._resume(layer))

    def _resume(self, layer: Any) -> None:
        """The retry thread: until the layer answers, then sends what was held back (in order) and unpauses."""
        loop = asyncio.new_event_loop()
        try:
            while True:
                self._sleep(retry_seconds())
                if self._send_held(loop, layer):
                    return
        finally:
            loop.close()

    def _send_held(self, loop: asyncio.AbstractEventLoop, layer: Any) -> bool:
        """One attempt: True when everything held back was sent and publishing resumed."""
        while True:
            with self._lock:
                head = self.held[0] if self.held else None
            group, message = head or (PROBE_GROUP, PROBE_MESSAGE)
            try:
                loop.run_until_complete(call_layer(partial(layer.group_send, group, message)))
            except Exception as error:
                if head is not None:
                    stats.add("publish_failures")
                self.faults.failed(error)
                return False
            with self._lock:
                if head is not None:
                    self.held.popleft()  # only this thread takes from the front; writers append meanwhile
                    stats.add("published")
                if not self.held:
                    self.paused = False
                    self.faults.recovered("; publishing resumed")
                    return True


publisher = Publisher()


def publish_events(events: list[Event]) -> None:
    """Send committed events to every server process (never raises: the write has committed already)."""
    publisher.publish(events)
