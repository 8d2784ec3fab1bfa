"""Group memberships of closed sockets that could not be removed at close, removed behind it one at a time.

A socket leaves its revocation groups when it closes (``RealtimeAuthMixin.auth_disconnect``). When that fails — the
channel layer's Redis connection pool exhausted by a mass close, Redis down — or never runs (the server cancelled
the connection's application), the memberships are handed here: one task per event loop removes them one at a
time, retrying with a growing delay, so a thousand failed closes add one Redis connection's load, not a thousand.
A membership left behind would route revocations to a channel nobody reads until the layer's group expiry (a day).
The queue holds only (layer, channel name, group): never the socket.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from typing import Any

logger = logging.getLogger(__name__)

RETRY_SECONDS = (0.5, 2.0, 8.0, 30.0, 120.0)  # after the n-th failure; a membership failing once more is abandoned


class GroupCleanup:
    """This event loop's memberships to remove, drained by one task."""

    def __init__(self) -> None:
        self.pending: deque[tuple[Any, str, str, int]] = deque()  # (layer, channel, group, failures so far)
        self.abandoned = 0
        self._task: asyncio.Task[None] | None = None

    def leave(self, layer: Any, channel: str, groups: frozenset[str]) -> None:
        for group in sorted(groups):
            self.pending.append((layer, channel, group, 0))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        abandoned = 0
        while self.pending:
            layer, channel, group, failures = self.pending.popleft()
            try:
                await layer.group_discard(group, channel)
            except Exception as error:
                if failures >= len(RETRY_SECONDS):
                    abandoned += 1
                    continue
                logger.debug("leaving group %s failed (%s); retrying", group, error)
                self.pending.append((layer, channel, group, failures + 1))
                await asyncio.sleep(RETRY_SECONDS[failures])  # the layer is failing: everything waits
        if abandoned:
            self.abandoned += abandoned
            logger.warning(
                "%d group membership(s) of closed sockets could not be removed; the channel layer expires them",
                abandoned,
            )


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCleanup] = weakref.WeakKeyDictionary()


def group_cleanup() -> GroupCleanup:
    """The running event loop's cleanup."""
    loop = asyncio.get_running_loop()
    cleanup = _by_loop.get(loop)
    if cleanup is None:
        cleanup = _by_loop[loop] = GroupCleanup()
    return cleanup
