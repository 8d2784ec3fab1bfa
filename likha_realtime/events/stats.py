"""Counters of the event path in this process: nothing is lost or dropped without being counted and logged."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from likha_realtime.metrics import count_event


@dataclass
class EventStats:
    published: int = 0  # events handed to the channel layer
    publish_failures: int = 0  # a group_send of an event raised or timed out (Redis down, ...)
    publish_deferred: int = 0  # events held back while publishing was paused (sent when Redis answered again)
    publish_dropped: int = 0  # events dropped while publishing was paused: the hold-back buffer was full
    received: int = 0  # events this process took from its channel
    lost: int = 0  # gaps in a publisher's sequence: over channel capacity or expired in transit
    queue_dropped: int = 0  # events dropped because this process's delivery queue was full
    deliveries_dropped: int = 0  # pending deliveries dropped over FANOUT_BACKLOG (their subscriptions resync)
    committed_reads: int = 0  # batches whose frame was made from the rows as their write committed them (no query)
    rereads: int = 0  # batches whose rows were re-read from the database (the committed rows could not answer)
    fast_lane_deliveries: int = 0  # event deliveries written at once (no delivery turn, no send coroutine)
    frames_sent: int = 0  # subscription frames written to sockets
    delivery_errors: int = 0  # an event's delivery failed (logged with its traceback)
    slow_readers_closed: int = 0  # sockets closed 4429: bytes waiting for a client over SEND_BUFFER_MAX_BYTES
    receive_failures: int = 0  # the process channel's receive or group join failed (Redis unreachable, ...)
    resyncs: int = 0  # resync frames sent to subscriptions that may have missed events (PROTOCOL §5)

    def add(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` more of ``name`` here (``/server/info``) and in its Prometheus metric (``/metrics``)."""
        setattr(self, name, getattr(self, name) + amount)
        count_event(name, amount)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def reset(self) -> None:
        for name in asdict(self):
            setattr(self, name, 0)


stats = EventStats()
