"""Heartbeat state of one connection (PROTOCOL §4): ping every period, close a client silent since the last ping."""

from __future__ import annotations

from enum import Enum


class Beat(Enum):
    PING = "ping"
    CLOSE = "close"


class Heartbeat:
    """At each period ``tick()`` answers PING, or CLOSE when nothing arrived since the previous ping."""

    def __init__(self) -> None:
        self._pinged = False
        self._heard = False

    def heard(self) -> None:
        """Any client message (not only pong) proves the client alive."""
        self._heard = True

    def tick(self) -> Beat:
        if self._pinged and not self._heard:
            return Beat.CLOSE
        self._pinged = True
        self._heard = False
        return Beat.PING
