"""Readiness checks for load balancers (``/readyz``): the database and the channel layer answer, in bounded time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer
from django.db import connections

logger = logging.getLogger(__name__)

OK = "ok"
Check = Callable[[], Awaitable[None]]


def _query_databases() -> None:
    """``SELECT 1`` on every configured database (the host's routers may send reads and writes elsewhere)."""
    try:
        for connection in connections.all():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
    finally:
        connections.close_all()  # a health probe's thread keeps no connection: pooled ones go back to the pool


class DatabaseCheck:
    """``SELECT 1`` on a thread of its own, one at a time. A query the database never answers cannot be cancelled:
    its thread waits for the pool's timeout. On the thread pool shared with Django (which logs every 4xx and 5xx
    answer there) stuck checks would pile up and delay other requests; here a check still stuck when the next probe
    comes makes that probe's answer ``timeout`` at once, and nothing else waits on it."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="likha-readyz")
        self._running: concurrent.futures.Future[None] | None = None

    async def __call__(self) -> None:
        if self._running is not None and not self._running.done():
            raise TimeoutError("the previous database check has not finished")
        self._running = self._executor.submit(_query_databases)
        await asyncio.wrap_future(self._running)


database = DatabaseCheck()


async def channel_layer() -> None:
    """Every Redis host of a channels-redis layer answers PING; another layer carries a message to itself."""
    layer: Any = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured (CHANNEL_LAYERS)")
    if hasattr(layer, "connection") and hasattr(layer, "ring_size"):
        for index in range(layer.ring_size):
            await layer.connection(index).ping()
        return
    name = await layer.new_channel("health.")
    await layer.send(name, {"type": "health.ping"})
    await layer.receive(name)


CHECKS: dict[str, Check] = {"database": database, "channel_layer": channel_layer}


async def readiness(within: float, checks: dict[str, Check] | None = None) -> dict[str, str]:
    """Each check's result, run side by side: ``"ok"``, ``"timeout"`` or ``"error"`` (details go to the log only:
    a probe's answer names no host, user or driver message)."""
    chosen = CHECKS if checks is None else checks
    results = await asyncio.gather(*(_run(name, check, within) for name, check in chosen.items()))
    return dict(zip(chosen, results, strict=True))


class Probe:
    """Readiness as probes see it: one run of the checks at a time per event loop, whose result answers every probe
    for ``max_age`` seconds, so a flood of ``/readyz`` requests costs the database and Redis at most one check per
    ``max_age`` (an unauthenticated route must not be a lever on the pool)."""

    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, str]] | None = None
        self._running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[dict[str, str]]] = (
            weakref.WeakKeyDictionary()
        )

    async def result(self, within: float, max_age: float) -> dict[str, str]:
        if self._last is not None and self.clock() - self._last[0] < max_age:
            return self._last[1]
        loop = asyncio.get_running_loop()
        task = self._running.get(loop)
        if task is None:
            task = self._running[loop] = loop.create_task(readiness(within))
            task.add_done_callback(lambda done: self._finished(loop, done))
        return await asyncio.shield(task)  # a probe that goes away does not cancel the others' check

    def _finished(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[dict[str, str]]) -> None:
        if self._running.get(loop) is task:
            del self._running[loop]
        if not task.cancelled() and task.exception() is None:
            self._last = (self.clock(), task.result())


probe = Probe()


async def _run(name: str, check: Check, within: float) -> str:
    try:
        await asyncio.wait_for(check(), within)
    except TimeoutError:
        logger.warning("Readiness check %s took over %ss", name, within)
        return "timeout"
    except Exception as exc:  # any failure means "not ready"; what failed is logged
        logger.warning("Readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return "error"
    return OK
