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
when that channel's socket has gone: ``forget``). Use it as the ``BACKEND`` (docs/CONFIGURATION.md, "Channel
layer"); check ``likha_realtime.W006`` names the plain one. tests/likha_realtime/test_layers.py holds both to this,
and fails once channels-redis no longer loses the message (this subclass can then go).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from channels_redis.core import RedisChannelLayer as UpstreamRedisChannelLayer

logger = logging.getLogger(__name__)

FORGOTTEN_KEPT = 4096  # names of closed sockets' channels remembered, so that a late message does not revive one


class RedisChannelLayer(UpstreamRedisChannelLayer):
    """channels-redis' ``RedisChannelLayer`` whose shared read is never cancelled half-way (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self.orphans_dropped = 0  # messages read for a channel whose socket had gone

    async def receive_single(self, channel: str) -> Any:
        if "!" not in channel:  # a plain channel: its own receive, nothing shared to lose
            return await super().receive_single(channel)
        read = asyncio.ensure_future(super().receive_single(channel))
        try:
            return await asyncio.shield(read)
        except asyncio.CancelledError:
            read.add_done_callback(self._hand_over)
            raise

    def _hand_over(self, read: asyncio.Future[Any]) -> None:
        """A read whose receive was cancelled: its message goes to the buffer of the channel it was for."""
        if read.cancelled() or read.exception() is not None:
            return  # nothing was popped, or the pop failed: the message (if any) is in the backup list
        message_channel, message = read.result()
        for name in message_channel if isinstance(message_channel, list) else [message_channel]:
            if name in self._forgotten:
                self.orphans_dropped += 1
                continue
            self.receive_buffer[name].put_nowait(message)

    def forget(self, channel: str) -> None:
        """``channel``'s socket has ended: its buffer goes, and a message that a cancelled read hands over later
        is dropped instead of keeping a buffer for it."""
        self.receive_buffer.pop(channel, None)
        self._forgotten[channel] = None
        if len(self._forgotten) > FORGOTTEN_KEPT:
            self._forgotten.popitem(last=False)
