"""The Prometheus metrics of the realtime layer (prometheus-client), and their exposition for ``GET /metrics``.

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the server starts, the same directory for every server
process of one deployment, emptied when the deployment starts) each process writes its values there and ``/metrics``
on any process answers for all of them; gauges count live processes only (``mark_process_dead`` at shutdown).
Without it, ``/metrics`` answers for the process that serves the request. docs/OPERATIONS.md lists every metric.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

CONNECTIONS = Gauge(
    "likha_realtime_connections",
    "Open WebSocket connections, by socket and the socket's auth mode.",
    ["socket", "mode"],
    multiprocess_mode="livesum",
)
AUTH = Counter(
    "likha_realtime_auth",
    "Socket authentications: result success or failure; reason ok, or the error code (AUTH_FAILED, TOKEN_EXPIRED, "
    "AUTH_TIMEOUT, REQUESTS_EXCEEDED, FORBIDDEN).",
    ["socket", "result", "reason"],
)
SUBSCRIPTIONS = Gauge(
    "likha_realtime_subscriptions",
    "Open subscriptions: REST subscriptions; GraphQL operations in flight (subscriptions, and queries while they run).",
    ["socket"],
    multiprocess_mode="livesum",
)
EVENTS = Counter(
    "likha_realtime_events",
    "The event path, by outcome: published, received, delivered (frames written to sockets), lost, dropped_queue, "
    "dropped_backlog, dropped_publish, deferred, resyncs, committed_reads, rereads, delivery_errors.",
    ["outcome"],
)
COMMIT_TO_SEND = Histogram(
    "likha_realtime_commit_to_send_seconds",
    "From a write's commit (its event handed to the channel layer) to a subscription frame written to a socket.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SLOW_READER_CLOSES = Counter(
    "likha_realtime_slow_reader_closes", "Sockets closed 4429: bytes waiting for a client over SEND_BUFFER_MAX_BYTES."
)
REDIS_ERRORS = Counter(
    "likha_realtime_channel_layer_errors",
    "Channel layer (Redis) calls that failed or timed out, by operation (publish, receive, join).",
    ["operation"],
)

# EventStats field -> (family, label) ; fields not listed are only in /server/info.
EVENT_OUTCOMES: dict[str, str] = {
    "published": "published",
    "received": "received",
    "lost": "lost",
    "queue_dropped": "dropped_queue",
    "deliveries_dropped": "dropped_backlog",
    "publish_dropped": "dropped_publish",
    "publish_deferred": "deferred",
    "resyncs": "resyncs",
    "committed_reads": "committed_reads",
    "rereads": "rereads",
    "delivery_errors": "delivery_errors",
}
LAYER_ERRORS: dict[str, str] = {"publish_failures": "publish", "receive_failures": "receive"}


# Each EventStats field's counter (a labelled child made once: ``labels()`` takes a lock and a lookup per call, and
# ``frames_sent`` moves once per frame).
_COUNTERS: dict[str, Any] = {
    **{field: EVENTS.labels(outcome) for field, outcome in EVENT_OUTCOMES.items()},
    **{field: REDIS_ERRORS.labels(operation) for field, operation in LAYER_ERRORS.items()},
    "slow_readers_closed": SLOW_READER_CLOSES,
}


def count_event(field: str, amount: int) -> None:
    """An ``EventStats`` counter moved by ``amount``: the matching Prometheus counter moves with it."""
    counter = _COUNTERS.get(field)
    if counter is not None and amount > 0:
        counter.inc(amount)


class FrameMeter:
    """Frames written to sockets, for the ``delivered`` counter and the commit-to-send histogram, at a cost per frame
    the fan-out can carry (tens of thousands of frames a second; prometheus-client's ``inc`` takes a lock, 1.2 µs,
    ``observe`` two, 2.4 µs): frames are counted here and handed to the counter on the event loop at most every
    ``FLUSH_SECONDS``; a frame's commit-to-send time is observed unless a frame of the same event was observed less
    than ``SAMPLE_SECONDS`` ago in this process (a fast-lane pass writes one event to a thousand idle sockets within
    a few milliseconds: a few observations stand for them, and every later straggler is observed)."""

    FLUSH_SECONDS = 0.1
    SAMPLE_SECONDS = 0.005
    clock = staticmethod(time.time)

    def __init__(self) -> None:
        self.pending = 0
        self._timer: asyncio.TimerHandle | None = None
        self._event: object = None
        self._observed_at = 0.0

    def sent(self, event: object, published: float | None) -> None:
        self.pending += 1
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self._flush_later)
            except RuntimeError:  # no event loop in this thread: nothing would flush later
                self.flush()
        if published is not None:
            now = self.clock()
            if event is not self._event or now - self._observed_at >= self.SAMPLE_SECONDS:
                self._event, self._observed_at = event, now
                COMMIT_TO_SEND.observe(max(0.0, now - published))

    def flush(self) -> None:
        count, self.pending = self.pending, 0
        if count:
            DELIVERED.inc(count)

    def _flush_later(self) -> None:
        self._timer = None
        self.flush()


DELIVERED = EVENTS.labels("delivered")
frames = FrameMeter()


def exposition() -> tuple[bytes, str]:
    """The text format of every metric: all server processes' when ``PROMETHEUS_MULTIPROC_DIR`` is set."""
    registry: Any
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_ended(pid: int | None = None) -> None:
    """This server process is stopping: its live gauges (connections, subscriptions) stop counting."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)
