"""Channel-layer (Redis) faults: bounded calls, and one log line per fault and period instead of one per failure.

Used by the publisher (``events/transport.py``), the process channel (``node.py``) and the log handler
(``logs/handler.py``). docs/RELIABILITY.md ("Redis faults") describes what each does while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from likha_realtime.conf import realtime_settings

try:  # channels-redis' client; another channel layer raises the builtin errors
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    CONNECTION_ERRORS: tuple[type[BaseException], ...] = (_RedisConnectionError, _RedisTimeoutError, OSError)
except ImportError:  # pragma: no cover - redis is a dependency of channels-redis
    CONNECTION_ERRORS = (OSError,)

Clock = Callable[[], float]


def layer_timeout() -> float:
    return float(realtime_settings.CHANNEL_LAYER_TIMEOUT)


def retry_seconds() -> float:
    return float(realtime_settings.CHANNEL_LAYER_RETRY)


def log_interval() -> float:
    return float(realtime_settings.CHANNEL_LAYER_FAULT_LOG_INTERVAL)


async def call_layer(make: Callable[[], Awaitable[Any]]) -> None:
    """Await ``make()`` for at most ``CHANNEL_LAYER_TIMEOUT`` seconds, raising ``TimeoutError`` after.

    A connection error is retried once at once: a pooled connection that a restarted Redis closed fails the first
    command sent on it (redis-py reconnects for the next one), before anything was written.
    """

    async def attempt() -> None:
        try:
            await make()
        except CONNECTION_ERRORS:
            await make()

    await asyncio.wait_for(attempt(), layer_timeout())


def describe(error: BaseException) -> str:
    text = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class FaultLog:
    """The log lines of one kind of fault (``subject``): the first failure at once, then at most one line per
    ``interval`` seconds with what was counted since, and one line when it ends. Thread-safe; ``clock`` is
    injectable for tests. No traceback for connection errors (one per retry would flood the log), one with the
    first line of a fault for anything else."""

    def __init__(
        self,
        logger: logging.Logger,
        subject: str,
        counted: str = "failure(s)",
        interval: Callable[[], float] = log_interval,
        clock: Clock = time.monotonic,
    ) -> None:
        self.logger = logger
        self.subject = subject
        self.counted = counted
        self.interval = interval
        self.clock = clock
        self.since: float | None = None  # when the current fault began (None: no fault)
        self._last_line = 0.0
        self._failures = 0  # failures since the last line
        self._counted = 0  # counted items since the last line
        self._total_failures = 0
        self._total_counted = 0
        self._last_error = ""
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, detail: str = "") -> None:
        with self._lock:
            now = self.clock()
            self._failures += 1
            self._total_failures += 1
            self._last_error = describe(error)
            if self.since is None:
                self.since = self._last_line = now
                self._failures = self._counted = 0
                trace = None if isinstance(error, (*CONNECTION_ERRORS, TimeoutError)) else error
                self.logger.warning(
                    "%s: the channel layer failed (%s)%s", self.subject, self._last_error, detail, exc_info=trace
                )
                return
            self._maybe_summary(now)

    def count(self, number: int = 1) -> None:
        """Something this fault cost (events deferred, lines not published): reported with the next line."""
        with self._lock:
            self._counted += number
            self._total_counted += number
            if self.since is not None:
                self._maybe_summary(self.clock())

    def recovered(self, detail: str = "") -> float | None:
        """The fault ended: one line with its duration and totals; returns the duration (None: no fault)."""
        with self._lock:
            if self.since is None:
                return None
            duration = self.clock() - self.since
            self.logger.warning(
                "%s: the channel layer answers again after %.1fs (%d failure(s)%s)%s",
                self.subject,
                duration,
                self._total_failures,
                f", {self._total_counted} {self.counted}" if self._total_counted else "",
                detail,
            )
            self.since = None
            self._failures = self._counted = self._total_failures = self._total_counted = 0
            return duration

    def _maybe_summary(self, now: float) -> None:
        if self.since is None or now - self._last_line < self.interval():
            return
        self.logger.warning(
            "%s: the channel layer is still failing after %.0fs: %d failure(s)%s in the last %.0fs (last: %s)",
            self.subject,
            now - self.since,
            self._failures,
            f", {self._counted} {self.counted}" if self._counted else "",
            now - self._last_line,
            self._last_error,
        )
        self._last_line = now
        self._failures = self._counted = 0
