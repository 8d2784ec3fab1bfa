"""The REST-style socket (PROTOCOL §3–§6): auth, ping/pong, subscriptions and items."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from channels.db import database_sync_to_async

from likha_realtime import metrics
from likha_realtime.access import subscriptions as subs
from likha_realtime.access.items import items_reply
from likha_realtime.access.principal import Principal
from likha_realtime.access.subscriptions import Subscription
from likha_realtime.backpressure import Backlog, close_slow_reader, text_size
from likha_realtime.conf import realtime_settings
from likha_realtime.events.deliver import SharedRead
from likha_realtime.events.fanout import get_dispatcher
from likha_realtime.sockets.base import JsonSocketConsumer
from likha_realtime.wire.codec import encode_json
from likha_realtime.wire.errors import TooManySubscriptions
from realtime_auth.wire import with_uid

logger = logging.getLogger(__name__)


class RestConsumer(JsonSocketConsumer):
    socket = "rest"
    handlers: ClassVar[dict[str, str]] = {
        **JsonSocketConsumer.handlers,
        "subscribe": "handle_subscribe",
        "unsubscribe": "handle_unsubscribe",
        "items": "handle_items",
    }
    contexts: ClassVar[dict[str, str]] = {name: name for name in ("auth", "subscribe", "unsubscribe", "items")}

    _anonymous_ids = itertools.count(1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions: Mapping[str, Subscription] = MappingProxyType({})
        self.principal: Principal | None = None
        self._held_frames: deque[tuple[Subscription, str]] = deque()
        self._held = Backlog()  # bytes of _held_frames: bounded by SEND_BUFFER_MAX_BYTES (close 4429 beyond)
        self._release_task: asyncio.Task[None] | None = None
        self._listening = False  # registered with this loop's dispatcher (until release())

    async def on_open(self) -> None:
        # Awaiting the handshake, nothing but an auth frame is handled: the rights are read once it has an identity
        # (or falls back to the public role), not for the public role first (a query per connect).
        if self.principal is None and not self.auth.awaiting_handshake:
            self.principal = await database_sync_to_async(Principal)(self.user)

    async def on_close(self) -> None:
        self.release()

    def release(self) -> None:
        super().release()
        if self._listening:
            dispatcher = get_dispatcher()
            # Every collection it ever listened to, not only those of its last subscriptions: an unsubscribed or
            # replaced subscription leaves the consumer registered, and a closed consumer must not be kept alive.
            for collection in list(dispatcher.listeners):
                dispatcher.discard(collection, self)
            self._listening = False
        self.subscriptions = {}
        self._held_frames.clear()
        self._held.clear()
        if self._release_task is not None:
            self._release_task.cancel()
            self._release_task = None

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        """By uid (read-only: a change assigns a new mapping, so that the dispatcher's routes follow it)."""
        return self._subscriptions

    @subscriptions.setter
    def subscriptions(self, subscriptions: Mapping[str, Subscription]) -> None:
        metrics.subscriptions_changed("rest", len(subscriptions) - len(self._subscriptions))
        self._subscriptions = MappingProxyType(dict(subscriptions))
        if self._listening:
            get_dispatcher().reroute(self)

    def subscriptions_for(self, collection: str) -> list[Subscription]:
        return [s for s in self._subscriptions.values() if s.collection == collection]

    def item_keys(self, collection: str) -> frozenset[str] | None:
        """The rows of ``collection`` whose events may concern this connection (keys as strings), ``None`` for any
        row: the dispatcher's routes (``events.fanout``), so an event skips the connections of other items."""
        keys = []
        for subscription in self.subscriptions_for(collection):
            if subscription.item_key is None:
                return None
            keys.append(subscription.item_key)
        return frozenset(keys)

    async def receive_event(self, subscription: Subscription, action: str, payload: Any, data_json: str) -> None:
        """An event's frame, read under ``subscription``'s plan, goes out only while that plan is still this
        connection's: a login, expiry or rights change replaces the plans under the auth lock, and a frame read
        under rights the connection no longer has is dropped. While the lock is held the frame waits (in order)
        for it on a task of this connection, so the delivery worker never waits for one socket."""
        await self._receive_frame(subscription, subscription.frame_text(action, data_json))

    def receive_event_now(
        self, subscription: Subscription, action: str, payload: Any, data_json: str, read: SharedRead
    ) -> bool | None:
        """``receive_event`` at once, when nothing makes the frame wait (no auth lock held, no frame held for it):
        ``True`` when sent, ``False`` when dropped (its plan is no longer the connection's, the socket is closing),
        ``None`` when only ``receive_event`` can send it (events.scheduler's fast lane)."""
        if self._held_frames or self._auth_lock.locked():
            return None
        if not any(current is subscription for current in self._subscriptions.values()):
            return False
        return self.send_text_now(subscription.frame_text(action, data_json), read.prepared)

    async def receive_resync(self, subscription: Subscription) -> None:
        """Events for ``subscription`` were dropped (the fan-out backlog overflowed): the client re-reads."""
        await self._receive_frame(subscription, encode_json(subscription.frame("resync", with_data=False)))

    async def resync(self, collection: str) -> int:
        """PROTOCOL §5: this connection's subscriptions to ``collection`` may have missed events (the fan-out bus
        was unreachable, a queue overflowed); each gets a ``resync`` frame. The frame holds no data, so it goes to
        the subscriptions as they are once any re-auth in progress is done (which may replace them, same uids).
        Returns how many subscriptions it concerns."""
        if self._auth_lock.locked():
            asyncio.get_running_loop().create_task(self._resync_after_auth(collection))
            return len(self.subscriptions_for(collection))
        return await self._send_resyncs(collection)

    async def _resync_after_auth(self, collection: str) -> None:
        async with self._auth_lock:
            await self._send_resyncs(collection)

    async def _send_resyncs(self, collection: str) -> int:
        subscriptions = self.subscriptions_for(collection)
        for subscription in subscriptions:
            await self.send_text(self.encode_json(subscription.frame("resync", with_data=False)))
        return len(subscriptions)

    async def _receive_frame(self, subscription: Subscription, frame: str) -> None:
        if self._held_frames or self._auth_lock.locked():
            size = text_size(frame)
            if self._closing:
                return
            if not self._held.add(size):  # over SEND_BUFFER_MAX_BYTES: closed 4429, what it held is dropped
                waiting = self._held.size + size
                self._held_frames.clear()
                self._held.clear()
                await close_slow_reader(self, "frames held for the auth lock", waiting, self._held.limit)
                return
            self._held_frames.append((subscription, frame))
            if self._release_task is None:
                self._release_task = asyncio.get_running_loop().create_task(self._release_held_frames())
            return
        await self._send_if_current(subscription, frame)  # no await before it: the plans cannot change meanwhile

    async def _release_held_frames(self) -> None:
        try:
            async with self._auth_lock:
                while self._held_frames:
                    subscription, frame = self._held_frames.popleft()
                    self._held.remove(text_size(frame))
                    await self._send_if_current(subscription, frame)
        finally:
            self._release_task = None
            if self._held_frames and not self._closing:  # arrived after the lock was released: go again
                self._release_task = asyncio.get_running_loop().create_task(self._release_held_frames())

    async def _send_if_current(self, subscription: Subscription, frame: str) -> None:
        if any(current is subscription for current in self.subscriptions.values()):
            await self.send_text(frame)

    # -- messages ----------------------------------------------------------------------------------------------

    async def handle_subscribe(self, message: dict[str, Any]) -> None:
        limit = int(realtime_settings.SUBSCRIPTIONS_MAX)
        uid = message.get("uid")
        if len(self.subscriptions) >= limit and (uid is None or str(uid) not in self.subscriptions):
            raise TooManySubscriptions(limit)  # a new one (the same uid again replaces, and is not counted twice)
        subscription = await database_sync_to_async(subs.prepare)(self.principal, message)
        key = subscription.uid if subscription.uid is not None else f"\0{next(self._anonymous_ids)}"
        # Listening before the init read (the frames of events received meanwhile wait for the auth lock this handler
        # holds, so they follow the init): a write committed after the read but received before the subscription
        # listened would otherwise reach it never. ``add`` also joins the collection's group first, so a write on
        # another server process reaches this one too (a process's first subscriber used to get its init first).
        subscription = subs.begin(subscription)
        self.subscriptions = {**self.subscriptions, key: subscription}  # the same uid replaced only now it is valid
        self._listening = True  # before add(): a connection that ends during it is still taken out (release())
        try:
            await get_dispatcher().add(subscription.collection, self)
            init = await database_sync_to_async(subs.init_frame)(subscription)
        except BaseException:
            # No init: the uid is not subscribed (its error frame says so). What it replaced is not restored: it
            # has stopped hearing events, and could have missed some.
            if self.subscriptions.get(key) is subscription:
                self.subscriptions = {k: s for k, s in self.subscriptions.items() if k != key}
            raise
        await self.send_frame(init)
        logger.info("rest socket subscribed to %s", subscription.collection)

    async def handle_unsubscribe(self, message: dict[str, Any]) -> None:
        uid = message.get("uid")
        if uid is None:
            self.subscriptions = {}
            await self.send_frame({"type": "subscription", "event": "unsubscribe"})
            return
        self.subscriptions = {key: s for key, s in self.subscriptions.items() if key != str(uid)}
        await self.send_frame({"type": "subscription", "event": "unsubscribe", "uid": str(uid)})

    async def handle_items(self, message: dict[str, Any]) -> None:
        reply = await database_sync_to_async(items_reply)(self.principal, message)
        await self.send_frame(with_uid(reply, message.get("uid")))

    # -- rights ------------------------------------------------------------------------------------------------

    async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
        """New rights: re-plan every subscription (narrowed or widened by the new rights). A different user, or a
        change of the user's or the public role's rights, loses (with an error) what it may not read; falling back
        to the public role (expiry, failed re-auth) only suspends them until a user with the rights returns."""
        drop = self.user.is_authenticated or rights_changed
        # Nothing is delivered under the old rights while the new ones are read from the database.
        self.subscriptions = {key: subs.with_plan(s, None) for key, s in self.subscriptions.items()}
        current = dict(self.subscriptions)
        self.principal, replanned, dropped = await database_sync_to_async(_replan)(self.user, current, drop)
        self.subscriptions = replanned
        for uid in dropped:
            await self.send_error("subscribe", subs.removed(), uid)


def _replan(
    user: Any, current: dict[str, Subscription], drop: bool
) -> tuple[Principal, dict[str, Subscription], list[str]]:
    """The principal of ``user`` and the subscriptions re-planned under it (dropped ones listed by uid)."""
    principal = Principal(user)
    kept: dict[str, Subscription] = {}
    dropped = []
    for key, subscription in current.items():
        replanned = subs.replan(subscription, principal)
        if replanned.plan is None and drop:
            if subscription.uid is not None:
                dropped.append(subscription.uid)
        else:
            kept[key] = replanned
    return principal, kept, dropped
