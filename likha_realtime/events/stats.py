"""Counters of the event path in this process: nothing is lost or dropped without being counted and logged."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class EventStats:
    published: int = 0  # events handed to the channel layer
    publish_failures: int = 0  # group_send raised (Redis down, ...)
    received: int = 0  # events this process took from its channel
    lost: int = 0  # gaps in a publisher's sequence: over channel capacity or expired in transit
    queue_dropped: int = 0  # events dropped because this process's delivery queue was full
    deliveries_dropped: int = 0  # pending deliveries dropped over FANOUT_BACKLOG (their subscriptions resync)
    frames_sent: int = 0  # subscription frames written to sockets
    delivery_errors: int = 0  # an event's delivery failed (logged with its traceback)
    slow_readers_closed: int = 0  # sockets closed 4429: bytes waiting for a client over SEND_BUFFER_MAX_BYTES

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def reset(self) -> None:
        for name in asdict(self):
            setattr(self, name, 0)


stats = EventStats()
