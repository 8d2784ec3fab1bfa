"""Channel-layer faults: rate-limited fault logging (injectable clock) and bounded, once-retried layer calls."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from likha_realtime.faults import FaultLog, call_layer
from tests.likha_realtime.support import realtime

LOGGER = "tests.faults"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(clock: Clock) -> FaultLog:
    return FaultLog(logging.getLogger(LOGGER), "publishing events", "event(s) held back", lambda: 30, clock)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_fault_is_one_line_at_once_then_one_per_interval_with_counts_then_one_at_the_end(
    log: FaultLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    down = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log.failed(down, "; publishing paused")
        for second in range(1, 30):  # a failure every second, 29 of them: no line yet
            clock.now = 1000.0 + second
            log.failed(down)
            log.count(2)
        assert len(lines(caplog)) == 1
        clock.now = 1030.0
        log.failed(down)  # the interval is over: one line with what happened since the first
        clock.now = 1031.0
        log.count()
        assert log.failing
        clock.now = 1042.5
        assert log.recovered("; publishing resumed") == 42.5
    assert lines(caplog) == [
        "publishing events: the channel layer failed (ConnectionError: Error 111 connecting to 127.0.0.1:6379. "
        "Connection refused.); publishing paused",
        "publishing events: the channel layer is still failing after 30s: 30 failure(s), 58 event(s) held back in "
        "the last 30s (last: ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.)",
        "publishing events: the channel layer answers again after 42.5s (31 failure(s), 59 event(s) held back); "
        "publishing resumed",
    ]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records if r.name == LOGGER)
    assert not log.failing


def test_a_new_fault_after_recovery_starts_afresh_and_recovery_without_fault_logs_nothing(
    log: FaultLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert log.recovered() is None
        log.failed(TimeoutError())
        clock.now += 1
        log.recovered()
        clock.now += 100
        log.failed(TimeoutError())
    assert lines(caplog) == [
        "publishing events: the channel layer failed (TimeoutError)",
        "publishing events: the channel layer answers again after 1.0s (1 failure(s))",
        "publishing events: the channel layer failed (TimeoutError)",
    ]


def test_an_unexpected_error_is_logged_with_its_traceback_once(log: FaultLog, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log.failed(ValueError("bad message"))
        log.failed(ValueError("bad message"))
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.exc_info is not None and record.exc_info[0] is ValueError


async def test_a_call_that_hangs_fails_after_the_timeout() -> None:
    started = time.monotonic()
    with realtime(CHANNEL_LAYER_TIMEOUT=0.05), pytest.raises(TimeoutError):
        await call_layer(lambda: asyncio.sleep(60))
    assert time.monotonic() - started < 5


async def test_a_connection_error_is_retried_once_at_once_then_raised() -> None:
    calls: list[int] = []

    async def stale_then_fine() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RedisConnectionError("Connection closed by server.")

    await call_layer(stale_then_fine)
    assert len(calls) == 2

    async def down() -> None:
        calls.append(1)
        raise RedisConnectionError("Error 111 connecting")

    calls.clear()
    with pytest.raises(RedisConnectionError):
        await call_layer(down)
    assert len(calls) == 2


async def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError):
        await call_layer(broken)
    assert calls == [1]
