"""This server process on the channel layer: its node id and its one channel, shared by event fan-out and logs.

Every cross-process message this process receives (events, log lines of other processes) arrives on one channel,
joined to the groups that its users need, and is routed by ``type`` to the handler registered for it. See
docs/FANOUT.md for why one channel per process, not one per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Generic, TypeVar

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer

from likha_realtime.faults import FaultLog, call_layer, retry_seconds

logger = logging.getLogger(__name__)

NODE_ID = uuid.uuid4().hex  # this server process (the "uid" of its log lines)
BATCH_MAX = 500  # messages handed to the server's loop at once (own_loop)
GROUP_REFRESH_SECONDS = 3600  # channels-redis forgets group members after group_expiry (1 day by default)

MessageHandler = Callable[[dict[str, Any]], None]
T = TypeVar("T")


def crosses_processes(layer: Any) -> bool:
    """Whether ``layer`` reaches other server processes (the in-memory layer is this process only)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class ProcessChannel:
    """One event loop's channel: ``on(type, handler)`` routes messages, ``join(group)`` adds the channel to a group.

    Handlers run on the loop that joined and must not block (they enqueue). The channel is created on the first
    ``join``; its groups are re-joined every ``GROUP_REFRESH_SECONDS`` so that a long-lived process never drops out.

    With ``own_loop`` (a layer that crosses processes, i.e. Redis: ``process_channel``) the channel reads on an
    event loop of its own, in a daemon thread, and hands each message to the server's loop: every message costs
    channels-redis several Redis round trips, and on the server's loop each of them waits for a turn of a loop that
    a thousand sockets share; the process then fell behind its channel under load (channels-redis refused messages
    "over capacity", events were lost: docs/RELIABILITY.md, "Soak"). Its ``layer`` is then an instance of its own
    (its own Redis list and receive lock, separate from the sockets' channels).

    When the channel layer fails (a receive or a join raises or times out: Redis unreachable), the channel
    *recovers*: every ``CHANNEL_LAYER_RETRY`` seconds it re-joins all its groups (a restarted Redis without
    persistence has forgotten them) until Redis answers, then calls the ``on_recovered`` callbacks (the fan-out
    tells its subscribers to resync) and receives again. One recovery at a time; its log lines are rate-limited.
    Callbacks run on the server's loop, in order with the messages.
    """

    def __init__(self, layer: Any, own_loop: bool = False) -> None:
        self.layer = layer
        self.own_loop = own_loop
        self.name: str | None = None
        self.groups: set[str] = set()
        self.handlers: dict[str, MessageHandler] = {}
        self.recovered_callbacks: list[Callable[[], None]] = []
        self.failures = 0  # receive and join failures (the fan-out adds them to its counters)
        self.failed_callbacks: list[Callable[[], None]] = []
        self.faults = FaultLog(logger, "process channel")
        self._tasks: list[asyncio.Task[None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # used on the reading loop only
        self._server: asyncio.AbstractEventLoop | None = None  # where handlers and callbacks run
        self._reader: asyncio.AbstractEventLoop | None = None  # own_loop: the loop that uses the layer
        self._reader_lock = threading.Lock()
        self._joined: set[str] = set()  # own_loop: groups whose first join has finished (read on the server's loop)

    @property
    def crosses_processes(self) -> bool:
        return crosses_processes(self.layer)

    @property
    def recovering(self) -> bool:
        return self._recovery is not None and not self._recovery.done()

    def on(self, message_type: str, handler: MessageHandler) -> None:
        self.handlers[message_type] = handler

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the server's loop after each recovery, before messages are handled again."""
        self.recovered_callbacks.append(callback)

    def on_failed(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the server's loop on each failure of a receive or a join (to count them)."""
        self.failed_callbacks.append(callback)

    async def join(self, group: str) -> None:
        """Join ``group``; never raises for a failing channel layer (the recovery joins it when Redis answers)."""
        if self._server is None:
            self._server = asyncio.get_running_loop()
        if not self.own_loop:
            await self._join(group)
            return
        if group in self._joined:
            return  # joined once already (the refresh and the recovery keep it joined): no round trip
        # Shielded: a caller cancelled meanwhile (a socket closing) must not stop the join half-way on the reading
        # loop, with the group recorded as joined and never joined.
        await asyncio.shield(
            asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._join(group), self._reading_loop()))
        )
        self._joined.add(group)

    def _reading_loop(self) -> asyncio.AbstractEventLoop:
        with self._reader_lock:
            if self._reader is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="likha-process-channel", daemon=True).start()
                self._reader = loop
            return self._reader

    def _on_server(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the server's loop (in order with the others), or now without a loop of its own."""
        if not self.own_loop or self._server is None:
            callback(*args)
            return
        with contextlib.suppress(RuntimeError):  # the server's loop is closed (a test's, or the process is ending)
            self._server.call_soon_threadsafe(callback, *args)

    async def _join(self, group: str) -> None:
        """``join`` on the loop that uses the layer."""
        async with self._lock:
            if self.name is None:
                # The default "specific" prefix matters: channels-redis reads all of a layer instance's specific
                # channels from one Redis list under one lock; a second prefix would make two readers block each
                # other. (With own_loop the layer is an instance of its own, so its list is its own.)
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
        batch = getattr(self.layer, "receive_batch", None) if self.own_loop else None
        while True:
            try:
                if batch is not None:  # all that waits, in two round trips (likha_realtime.layers)
                    messages = await batch(self.name, BATCH_MAX)
                else:
                    messages = [await self.layer.receive(self.name)]
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failed(error)
                await asyncio.shield(self._recover())
                continue
            if messages:
                self._on_server(self._dispatch, messages)

    def _dispatch(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            handler = self.handlers.get(message.get("type", ""))
            if handler is None:
                continue
            try:
                handler(message)
            except Exception:  # one malformed message must not stop this process's channel
                logger.exception("process channel: the handler of a %r message failed", message.get("type"))

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        self._on_server(self._call_each, self.failed_callbacks, "a failure callback")
        self.faults.failed(error, f"; retrying every {retry_seconds():g}s")

    @staticmethod
    def _call_each(callbacks: list[Callable[[], None]], what: str) -> None:
        for callback in list(callbacks):
            try:
                callback()
            except Exception:
                logger.exception("process channel: %s failed", what)

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
            self._on_server(self._call_each, self.recovered_callbacks, "a recovery callback")
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
        if self._reader is None:
            self._cancel()
            return
        reader = self._reader
        with contextlib.suppress(RuntimeError):  # closed already
            reader.call_soon_threadsafe(self._cancel)
            reader.call_soon_threadsafe(reader.call_soon, reader.stop)  # after the cancellations have run

    def _cancel(self) -> None:
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


def _new_process_channel() -> ProcessChannel:
    """On a layer that crosses processes: an instance of the configured layer of its own, read on its own loop."""
    layer = get_channel_layer()
    if not crosses_processes(layer):
        return ProcessChannel(layer)
    return ProcessChannel(channel_layers.make_backend(DEFAULT_CHANNEL_LAYER), own_loop=True)


_channels: PerLoop[ProcessChannel] = PerLoop(_new_process_channel)


def process_channel() -> ProcessChannel:
    """The channel of the running event loop."""
    return _channels.get()
