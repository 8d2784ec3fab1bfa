"""``likha_realtime.health``: each check's state in bounded time, and one run of the checks however many probes ask."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from likha_realtime import health


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting(runs: list[int], started: asyncio.Event, gate: asyncio.Event) -> Callable[[], object]:
    """A check that counts its runs, says it started, and finishes when ``gate`` opens."""

    async def check() -> None:
        runs.append(1)
        started.set()
        await gate.wait()

    return check


async def test_a_failing_check_is_error_and_a_slow_one_is_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ConnectionError("redis://secret-host:6379 refused")

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def works() -> None:
        return None

    result = await health.readiness(0.05, {"a": fails, "b": hangs, "c": works})

    assert result == {"a": "error", "b": "timeout", "c": "ok"}
    assert "secret-host" in caplog.text  # the details are for the operator's log, not the probe's answer


async def test_concurrent_probes_share_one_run_and_its_result_answers_for_max_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[int] = []
    started, gate = asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(health, "CHECKS", {"x": counting(runs, started, gate)})
    probe, clock = health.Probe(), Clock()
    probe.clock = clock  # type: ignore[method-assign]

    waiting = [asyncio.ensure_future(probe.result(1.0, max_age=1.0)) for _ in range(50)]
    await started.wait()  # the run began after every probe asked (tasks start in order)
    gate.set()
    results = await asyncio.gather(*waiting)
    assert runs == [1] and results == [{"x": "ok"}] * 50

    clock.now = 0.5
    assert await probe.result(1.0, max_age=1.0) == {"x": "ok"}
    assert runs == [1]
    clock.now = 1.5
    assert await probe.result(1.0, max_age=1.0) == {"x": "ok"}
    assert runs == [1, 1]


async def test_a_probe_that_goes_away_does_not_cancel_the_others_check(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    started, gate = asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(health, "CHECKS", {"x": counting(runs, started, gate)})
    probe = health.Probe()
    first = asyncio.ensure_future(probe.result(1.0, max_age=1.0))
    second = asyncio.ensure_future(probe.result(1.0, max_age=1.0))
    await started.wait()
    first.cancel()
    gate.set()
    assert await second == {"x": "ok"}
    assert runs == [1]


async def test_a_database_check_still_stuck_makes_the_next_probe_time_out_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, entered = threading.Event(), threading.Event()

    def stuck() -> None:  # a query the database never answers (until the test ends)
        entered.set()
        release.wait()

    monkeypatch.setattr(health, "_query_databases", stuck)
    check = health.DatabaseCheck()
    try:
        assert await health.readiness(0.05, {"database": check}) == {"database": "timeout"}
        assert entered.is_set()
        started = time.monotonic()
        assert await health.readiness(30.0, {"database": check}) == {"database": "timeout"}
        assert time.monotonic() - started < 30.0  # answered without waiting for its bound: no second thread
    finally:
        release.set()
