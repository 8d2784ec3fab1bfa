"""The one way tests wait: until a condition holds, within a bound (never a fixed sleep standing in for an event).

``wait_until`` is for code that blocks (live tests, threads, other processes); ``wait_until_async`` for coroutines
on the event loop under test, which must keep running while we wait. Both poll briefly and fail with ``message``
when the bound passes, so a missed condition is a clear failure instead of a hang or a silent pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.01  # between checks: short enough not to slow a test, long enough not to starve the process


def wait_until(
    condition: Callable[[], T], timeout: float = 5.0, message: str = "", interval: float = POLL_SECONDS
) -> T:
    """Call ``condition`` until it returns a truthy value (returned); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


# The bound is this helper's point, with the same signature as wait_until: hence a ``timeout`` parameter.
async def wait_until_async(
    condition: Callable[[], T],
    timeout: float = 5.0,  # noqa: ASYNC109
    message: str = "",
    interval: float = POLL_SECONDS,
) -> T:
    """``wait_until`` for the event loop: the loop runs between checks (the awaited code makes progress)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def write_until_seen(
    write: Callable[[], object], seen: Callable[[float], T | None], timeout: float = 15.0, patience: float = 0.5
) -> T:
    """``write()``, then give ``seen(patience)`` that long to return what the write caused; write again until it does.

    For a subscriber in another process, which nothing tells when its subscription has joined the fan-out: a write
    before that is (by design) not delivered to it. Each retry is a real write, so the caller asserts on what
    arrives accordingly (the first event seen, showing the state of any of the writes; more events may follow).
    """
    deadline = time.monotonic() + timeout
    writes = 0
    while True:
        write()
        writes += 1
        value = seen(patience)
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"no event seen after {writes} write(s) in {timeout}s")
