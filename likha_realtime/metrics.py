"""The Prometheus metrics of the realtime layer (prometheus-client), and their exposition for ``GET /metrics``.

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the server starts, the same directory for every server
process of one deployment, emptied when the deployment starts) each process writes its values there and ``/metrics``
on any process answers for all of them; gauges count live processes only (``mark_process_dead`` at shutdown).
Without it, ``/metrics`` answers for the process that serves the request. docs/OPERATIONS.md lists every metric.
"""

from __future__ import annotations

import os
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
    "frames_sent": "delivered",
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


def count_event(field: str, amount: int) -> None:
    """An ``EventStats`` counter moved by ``amount``: the matching Prometheus counter moves with it."""
    if amount <= 0:
        return
    outcome = EVENT_OUTCOMES.get(field)
    if outcome is not None:
        EVENTS.labels(outcome).inc(amount)
    elif field in LAYER_ERRORS:
        REDIS_ERRORS.labels(LAYER_ERRORS[field]).inc(amount)
    elif field == "slow_readers_closed":
        SLOW_READER_CLOSES.inc(amount)


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
