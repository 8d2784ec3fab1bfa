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
