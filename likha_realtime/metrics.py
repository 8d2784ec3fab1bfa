"""The Prometheus metrics of the realtime layer (prometheus-client), and their exposition for ``GET /metrics``.

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the server starts, the same directory for every server
process of one deployment, emptied when the deployment starts) each process writes its values there and ``/metrics``
on any process answers for all of them; gauges count live processes only (``mark_process_dead`` at shutdown).
Without it, ``/metrics`` answers for the process that serves the request. docs/OPERATIONS.md lists every metric.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
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
SOCKETS = ("rest", "graphql", "logs")
MODES = ("public", "handshake", "strict")

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

_directory = os.environ.get(MULTIPROCESS_ENV)
if _directory and not (os.path.isdir(_directory) and os.access(_directory, os.W_OK)):
    # prometheus-client would fail at the first metric written: every socket's connect (HTTP 500). Say it at start.
    raise ImproperlyConfigured(
        f"{MULTIPROCESS_ENV}={_directory!r} is not a writable directory: create it before the server starts "
        "(every server process of the deployment shares it; docs/OPERATIONS.md)"
    )

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

# Every series of the gauges exists from the start (at 0): Prometheus sees them before the first connection, and in
# multi-process mode this process's file is written now, not at the first connect.
for _socket in SOCKETS:
    SUBSCRIPTIONS.labels(_socket)
    for _mode in MODES:
        CONNECTIONS.labels(_socket, _mode)


def best_effort(function: F) -> F:
    """Metrics never break what they measure: a failure to record (the multi-process directory removed under a
    running server, a full disk) is logged once per function, and the socket, login or frame goes on."""
    failed = False

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed
        try:
            return function(*args, **kwargs)
        except Exception:
            if not failed:
                failed = True
                logger.exception("Could not record a metric in %s (logged once)", function.__name__)
            return None

    return guarded  # type: ignore[return-value]


@best_effort
def connection_opened(socket: str, mode: str) -> None:
    CONNECTIONS.labels(socket, mode).inc()


@best_effort
def connection_closed(socket: str, mode: str) -> None:
    CONNECTIONS.labels(socket, mode).dec()


@best_effort
def auth_result(socket: str, code: str | None) -> None:
    """A login succeeded (``code`` None) or ended with the error ``code`` (a fixed set: no client text)."""
    AUTH.labels(socket, "success" if code is None else "failure", "ok" if code is None else code).inc()


@best_effort
def subscriptions_changed(socket: str, delta: int) -> None:
    if delta:
        SUBSCRIPTIONS.labels(socket).inc(delta)


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


@best_effort
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
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._event: object = None
        self._observed_at = 0.0

    def sent(self, event: object, published: float | None) -> None:
        self.pending += 1
        if self._timer is None or not (self._timer_loop is not None and self._timer_loop.is_running()):
            self._arm()  # (a timer on a loop that no longer runs never fires: a host, or a test, that ran another)
        if published is not None:
            now = self.clock()
            if event is not self._event or now - self._observed_at >= self.SAMPLE_SECONDS:
                self._event, self._observed_at = event, now
                _observe(max(0.0, now - published))

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: nothing would flush later
            self._timer = self._timer_loop = None
            self.flush()
            return
        self._timer_loop = loop
        self._timer = loop.call_later(self.FLUSH_SECONDS, self._flush_later)

    def flush(self) -> None:
        count, self.pending = self.pending, 0
        if count:
            _delivered(count)

    def _flush_later(self) -> None:
        self._timer = self._timer_loop = None
        self.flush()


@best_effort
def _observe(seconds: float) -> None:
    COMMIT_TO_SEND.observe(seconds)


@best_effort
def _delivered(count: int) -> None:
    DELIVERED.inc(count)


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
    """This server process is stopping: the frames it counted are handed over, and its live gauges (connections,
    subscriptions) stop counting."""
    frames.flush()
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)
