"""The Redis channel layer to use with the realtime sockets: channels-redis' own, minus a message loss on close.

channels-redis (4.3.0) keeps every process-local channel of a process (each socket's, and the process channel that
carries every event, ``likha_realtime.node``) in one Redis list, read by one receive at a time on behalf of all:
the receive that holds its lock pops the next message (``BZPOPMIN``), then copies it to a backup list
(``ZADD``) from which a later receive would restore it. When that receive is cancelled between the two — which is
what happens to a socket's receive when the socket closes, as a hundred do at once when slow readers are shed —
the popped message is gone, whichever channel it was for: an event for every subscriber of the process (seen in
tests/live/test_slow_readers_live.py as "event(s) ... were lost in transit"), or a rights change for another
socket.

:class:`RedisChannelLayer` lets that read finish instead: the receive's caller is cancelled at once, as before,
while the pop goes on in its own task and hands its message to the channel it was for (or drops it, counted,
when that channel's socket has gone: ``forget``). The receive that then reads for everyone also listens to its own
channel's buffer, so a message handed over to it is returned at once, not after the next message of the process.

Use it as the ``BACKEND`` (docs/CONFIGURATION.md, "Channel layer"); check ``likha_realtime.W006`` names the plain
one. tests/likha_realtime/test_layers.py holds both to this, and fails once channels-redis no longer loses the
message (this subclass can then go).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from channels_redis.core import RedisChannelLayer as UpstreamRedisChannelLayer

logger = logging.getLogger(__name__)

FORGOTTEN_KEPT = 4096  # names of closed sockets' channels remembered, so that a late message does not revive one


class RedisChannelLayer(UpstreamRedisChannelLayer):
    """channels-redis' ``RedisChannelLayer`` whose shared read is never cancelled half-way (module docstring).

    ``receive`` of a process-local channel is channels-redis 4.3.0's, with two changes: the receive that reads
    Redis for the whole process also listens to its own channel's buffer (a message handed over to it by a
    cancelled read ends its wait, while its own read goes on in its task and hands its message over in turn), and a
    cancelled receive leaves its read running (``_hand_over``) instead of cancelling it between ``BZPOPMIN`` and
    the backup ``ZADD``. Plain channels (without ``!``) are channels-redis' own.
    """

    receive_lock: Any  # channels-redis': an asyncio.Lock while receives are in, else None
    receive_event_loop: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self.orphans_dropped = 0  # messages read for a channel whose socket had gone
        self.undecodable = 0  # entries receive_batch could not decode (skipped)

    async def group_add(self, group: str, channel: str) -> None:
        """channels-redis 4.3.0's ``group_add`` (``ZADD`` the member, ``EXPIRE`` the group) in one round trip (a
        pipeline) instead of two: every socket login joins its user's and session's groups."""
        assert self.require_valid_group_name(group), "Group name not valid"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        group_key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        async with connection.pipeline(transaction=False) as pipe:
            pipe.zadd(group_key, {channel: time.time()})
            pipe.expire(group_key, self.group_expiry)
            await pipe.execute()

    async def group_add_many(self, groups: list[str], channel: str) -> None:
        """``group_add`` of each of ``groups``, in one pipeline per Redis server they hash to (a login joins its
        user's and session's groups: one round trip, not two)."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        now = time.time()
        for index, keys in self._keys_by_server(groups).items():
            async with self.connection(index).pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zadd(key, {channel: now})
                    pipe.expire(key, self.group_expiry)
                await pipe.execute()

    async def group_discard_many(self, groups: list[str], channel: str) -> None:
        """``group_discard`` of each of ``groups``, in one pipeline per Redis server (a socket closing leaves both)."""
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        for index, keys in self._keys_by_server(groups).items():
            async with self.connection(index).pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, channel)
                await pipe.execute()

    def _keys_by_server(self, groups: list[str]) -> dict[int, list[str]]:
        by_server: dict[int, list[str]] = {}
        for group in groups:
            assert self.require_valid_group_name(group), "Group name not valid"
            by_server.setdefault(self.consistent_hash(group), []).append(self._group_key(group))
        return by_server

    async def receive(self, channel: str) -> Any:
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        loop = asyncio.get_running_loop()
        self.receive_count += 1
        try:
            if self.receive_count == 1:  # the first receive in: the lock for reading on behalf of all
                self.receive_lock = asyncio.Lock()
                self.receive_event_loop = loop
            elif self.receive_event_loop != loop:
                raise RuntimeError("Two event loops are trying to receive() on one channel layer at once!")
            while self.receive_buffer[channel].empty():
                lock = asyncio.ensure_future(self.receive_lock.acquire())
                own = asyncio.ensure_future(self.receive_buffer[channel].get())
                try:
                    done, _ = await asyncio.wait({lock, own}, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    own.cancel()
                    self._give_up_lock(lock)
                    self._drop_if_empty(channel)
                    raise
                if own in done:  # another receive read it for this channel
                    self._give_up_lock(lock)
                    return self._took(channel, own.result())
                own.cancel()
                try:
                    message = await self._read_for_all(real_channel, channel)
                finally:
                    self.receive_lock.release()
                if message is not None:
                    return self._took(channel, message)
            return self._took(channel, self.receive_buffer[channel].get_nowait())
        finally:
            self.receive_count -= 1
            if self.receive_count == 0:
                self.receive_lock = None
                self.receive_event_loop = None

    async def _read_for_all(self, real_channel: str, channel: str) -> Any:
        """Holding the lock: read the next message of the process into its channel's buffer; return early with a
        message handed over to ``channel`` meanwhile (the read then goes on by itself)."""
        read = asyncio.ensure_future(self.receive_single(real_channel))
        own = asyncio.ensure_future(self.receive_buffer[channel].get())
        try:
            done, _ = await asyncio.wait({read, own}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            own.cancel()
            read.add_done_callback(self._hand_over)
            self._drop_if_empty(channel)
            raise
        if own in done:
            read.add_done_callback(self._hand_over)  # at once when it is done already
            return own.result()
        own.cancel()
        self._buffer(*read.result())  # raises what the read raised (Redis down): the caller sees it, as upstream
        return None

    def _give_up_lock(self, lock: asyncio.Future[Any]) -> None:
        """A lock acquisition no longer wanted: cancelled, or released when it was granted meanwhile."""
        if not lock.cancel() and not lock.cancelled() and lock.exception() is None and self.receive_lock is not None:
            self.receive_lock.release()

    def _took(self, channel: str, message: Any) -> Any:
        self._drop_if_empty(channel)
        return message

    def _drop_if_empty(self, channel: str) -> None:
        """No empty buffer is kept for a channel nobody waits on (channels-redis deletes it too)."""
        buffer = self.receive_buffer.get(channel)
        if buffer is not None and buffer.empty():
            del self.receive_buffer[channel]

    def _buffer(self, message_channel: str | list[str], message: Any) -> None:
        for name in message_channel if isinstance(message_channel, list) else [message_channel]:
            if name in self._forgotten:
                self.orphans_dropped += 1
                continue
            self.receive_buffer[name].put_nowait(message)

    def _hand_over(self, read: asyncio.Future[Any]) -> None:
        """A read whose receive went away (cancelled, or returned a message handed over to it): its message goes
        to the buffer of the channel it was for."""
        if read.cancelled() or read.exception() is not None:
            return  # nothing was popped, or the pop failed: a message, if any, is in the backup list
        self._buffer(*read.result())

    async def receive_batch(self, channel: str, limit: int = 1000) -> list[Any]:
        """The messages waiting on ``channel``, at most ``limit``, after waiting for the first (up to channels-redis'
        ``brpop_timeout``; none then): two Redis round trips for all of them, where ``receive`` costs four per
        message. Only for a channel that this instance alone reads and never cancels half-way (the process
        channel, ``likha_realtime.node``, on an instance of its own): it keeps no backup copy of what it pops."""
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        key = self.prefix + real_channel
        connection = self.connection(self.consistent_hash(real_channel))
        first = await connection.bzpopmin(key, timeout=self.brpop_timeout)
        if first is None:
            return []
        contents = [first[1]]
        if limit > 1:
            contents += [member for member, _ in await connection.zpopmin(key, limit - 1)]
        messages = []
        for content in contents:
            try:
                message = self.deserialize(content)
            except Exception:  # one bad entry must not lose the batch popped with it
                message = None
            if not isinstance(message, dict):
                self.undecodable += 1
                logger.warning("process channel: a message that cannot be decoded was skipped")
                continue
            target = message.pop("__asgi_channel__", channel)  # a group_send's: every channel that shares the key
            if channel == target or (isinstance(target, list) and channel in target):
                messages.append(message)
            else:  # another channel of this instance: never for the process channel's own instance
                self.orphans_dropped += 1
        return messages

    def forget(self, channel: str) -> None:
        """``channel``'s socket has ended: its buffer goes, and a message that a cancelled read hands over later
        is dropped instead of keeping a buffer for it."""
        self.receive_buffer.pop(channel, None)
        self._forgotten[channel] = None
        if len(self._forgotten) > FORGOTTEN_KEPT:
            self._forgotten.popitem(last=False)
