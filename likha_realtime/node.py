"""This server process on the channel layer: its node id and its one channel, shared by event fan-out and logs.

Every cross-process message this process receives (events, log lines of other processes) arrives on one channel,
joined to the groups that its users need, and is routed by ``type`` to the handler registered for it. See
docs/FANOUT.md for why one channel per process, not one per socket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Generic, TypeVar

from channels.layers import InMemoryChannelLayer, get_channel_layer

from likha_realtime.faults import FaultLog, call_layer, retry_seconds

logger = logging.getLogger(__name__)

NODE_ID = uuid.uuid4().hex  # this server process (the "uid" of its log lines)
GROUP_REFRESH_SECONDS = 3600  # channels-redis forgets group members after group_expiry (1 day by default)

MessageHandler = Callable[[dict[str, Any]], None]
T = TypeVar("T")


def crosses_processes(layer: Any) -> bool:
    """Whether ``layer`` reaches other server processes (the in-memory layer is this process only)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class ProcessChannel:
    """One event loop's channel: ``on(type, handler)`` routes messages, ``join(group)`` adds the channel to a group.

    Handlers run on the loop and must not block (they enqueue). The channel is created on the first ``join``;
    its groups are re-joined every ``GROUP_REFRESH_SECONDS`` so that a long-lived process never drops out.

    When the channel layer fails (a receive or a join raises or times out: Redis unreachable), the channel
    *recovers*: every ``CHANNEL_LAYER_RETRY`` seconds it re-joins all its groups (a restarted Redis without
    persistence has forgotten them) until Redis answers, then calls the ``on_recovered`` callbacks (the fan-out
    tells its subscribers to resync) and receives again. One recovery at a time; its log lines are rate-limited.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.name: str | None = None
        self.groups: set[str] = set()
        self.handlers: dict[str, MessageHandler] = {}
        self.recovered_callbacks: list[Callable[[], None]] = []
        self.failures = 0  # receive and join failures (the fan-out adds them to its counters)
        self.failed_callbacks: list[Callable[[], None]] = []
        self.faults = FaultLog(logger, "process channel")
        self._tasks: list[asyncio.Task[None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def crosses_processes(self) -> bool:
        return crosses_processes(self.layer)

    @property
    def recovering(self) -> bool:
        return self._recovery is not None and not self._recovery.done()

    def on(self, message_type: str, handler: MessageHandler) -> None:
        self.handlers[message_type] = handler

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the loop after each recovery, before messages are received again."""
        self.recovered_callbacks.append(callback)

    async def join(self, group: str) -> None:
        """Join ``group``; never raises for a failing channel layer (the recovery joins it when Redis answers)."""
        async with self._lock:
            if self.name is None:
                # The default "specific" prefix matters: channels-redis reads all of a process's specific channels
                # from one Redis list under one lock; a second prefix would make two readers block each other.
                self.name = await self.layer.new_channel()
                loop = asyncio.get_running_loop()
                self._tasks = [loop.create_task(self._receive()), loop.create_task(self._refresh())]
            if group in self.groups:
                return
            self.groups.add(group)
            if self.recovering:
                return  # joined with the others when Redis answers again
            try:
                await call_layer(partial(self.layer.group_add, group, self.name))
            except Exception as error:
                self._failed(error)
                self._recover()

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.name)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failed(error)
                await asyncio.shield(self._recover())
                continue
            handler = self.handlers.get(message.get("type", ""))
            if handler is None:
                continue
            try:
                handler(message)
            except Exception:  # one malformed message must not stop this process's channel
                logger.exception("process channel: the handler of a %r message failed", message.get("type"))

    def on_failed(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on each failure of a receive or a join (to count them)."""
        self.failed_callbacks.append(callback)

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        for callback in self.failed_callbacks:
            callback()
        self.faults.failed(error, f"; retrying every {retry_seconds():g}s")

    def _recover(self) -> asyncio.Task[None]:
        """The running recovery, or a new one."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._rejoin_until_answered())
        return self._recovery

    async def _rejoin_until_answered(self) -> None:
        while True:
            await asyncio.sleep(retry_seconds())
            async with self._lock:
                try:
                    for group in sorted(self.groups):
                        await call_layer(partial(self.layer.group_add, group, self.name))
                except Exception as error:
                    self._failed(error)
                    continue
                self.faults.recovered(f"; re-joined {len(self.groups)} group(s)")
            for callback in list(self.recovered_callbacks):
                try:
                    callback()
                except Exception:
                    logger.exception("process channel: a recovery callback failed")
            return

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            if self.recovering:
                continue
            try:
                for group in list(self.groups):
                    await call_layer(partial(self.layer.group_add, group, self.name))
            except Exception as error:
                self._failed(error)
                self._recover()

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._recovery is not None:
            self._recovery.cancel()


PROBE_GROUP = "likha.probe"  # never joined: asking Redis to remove a channel from it only checks that it answers
socket_channel_faults = FaultLog(logger, "socket channels")  # one for all of this process's sockets


async def receive_surviving(
    layer: Any, channel: str, groups: Callable[[], Iterable[str]], failed: Callable[[], None] = lambda: None
) -> dict[str, Any] | None:
    """The next message on a socket's own channel (revocations, rights changes: realtime_auth), or ``None`` once the
    channel layer answers again after it failed: the socket's ``groups()`` were joined again (a restarted Redis
    forgot them), and what the channel carried meanwhile may be lost, so the socket re-reads its identity.

    A failing receive never ends the socket (channels' consumer would close it with 1011); one log line for all of
    the process's sockets (``socket_channel_faults``), retried every ``CHANNEL_LAYER_RETRY`` seconds; ``failed()``
    is called when the receive fails.
    """
    try:
        message: dict[str, Any] = await layer.receive(channel)
        return message
    except asyncio.CancelledError:
        raise
    except Exception as error:
        failed()
        socket_channel_faults.failed(error, f"; sockets stay open, retrying every {retry_seconds():g}s")
    while True:
        await asyncio.sleep(retry_seconds())
        try:
            wanted = sorted(groups())
            for group in wanted:
                await call_layer(partial(layer.group_add, group, channel))
            if not wanted:
                await call_layer(partial(layer.group_discard, PROBE_GROUP, channel))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            socket_channel_faults.failed(error)
            continue
        socket_channel_faults.recovered("; sockets re-read their identity")
        return None


class PerLoop(Generic[T]):
    """One ``T`` per running event loop: one per server process, several in tests (each test has its own loop).

    Made on first use by ``factory`` inside the loop; forgotten with the loop. ``values()`` may be read from
    another thread (the log handler's).
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            value = self._by_loop.get(loop)
            if value is None:
                value = self._by_loop[loop] = self._factory()
            return value

    def values(self) -> list[T]:
        with self._lock:
            return list(self._by_loop.values())


_channels: PerLoop[ProcessChannel] = PerLoop(lambda: ProcessChannel(get_channel_layer()))


def process_channel() -> ProcessChannel:
    """The channel of the running event loop."""
    return _channels.get()
