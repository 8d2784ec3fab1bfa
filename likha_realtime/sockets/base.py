"""The lifecycle all three sockets share: settings, connection limit, auth, frames out; and the JSON sockets' base.

``RealtimeSocket`` is combined with a channels consumer: ``JsonSocketConsumer`` (REST and logs sockets, adding
heartbeat, decoding and whitelist dispatch) and the GraphQL consumer (strawberry's graphql-ws consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch

from likha_realtime import metrics
from likha_realtime.conf import realtime_settings, socket_auth, socket_conn_limit
from likha_realtime.layers import RedisChannelLayer
from likha_realtime.limits import MessageRate, TooManyMessages, UserBuckets
from likha_realtime.node import receive_surviving
from likha_realtime.sockets.direct import DirectSender, direct_sender
from likha_realtime.wire.codec import FrameError, decode_frame, encode_json
from likha_realtime.wire.errors import TooManyConnections, TooManyUserConnections
from likha_realtime.wire.heartbeat import Beat, Heartbeat
from likha_realtime.wire.prepared import PreparedFrames
from realtime_auth.busy import DatabaseBusy, database_busy
from realtime_auth.mixin import RealtimeAuthMixin
from realtime_auth.revocation import PUBLIC_GROUP
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode, RealtimeError, error_frame, with_uid

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
LAYER_RECOVERED = "likha.layer.recovered"  # a message this process gives a socket itself (never sent over Redis)


class RealtimeSocket(RealtimeAuthMixin):
    """One realtime socket's lifecycle, whatever its protocol.

    ``open_socket()`` runs before the handshake is answered (connection limit, URL token), ``socket_accepted()``
    right after ``accept()`` (a refused socket is told why and closed), ``close_socket()`` on disconnect. Frames
    go out through ``encode_json`` (override it on a subclass to change the codec, as channels' ``encode_json``).
    """

    socket: ClassVar[str] = ""
    open_connections: ClassVar[Counter[str]] = Counter()  # per server process, by socket
    user_connections: ClassVar[Counter[Any]] = Counter()  # per server process, by user key, the three sockets
    user_buckets: ClassVar[UserBuckets] = UserBuckets()  # per server process: each user's message rate

    _counted = False
    _mode = ""  # the auth mode it was counted under (the connections metric's label)
    _over_limit = False
    _counted_user: Any = None  # the user (key) this connection counts against: the one it last logged in as
    _rate: MessageRate | None = None
    _layer_ready: asyncio.Event | None = None
    _direct: DirectSender | None = None

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return encode_json(content)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI application of one connection: its place under the connection limit, and everything the process
        holds for it (``release()``), are given back however the connection ends — an unexpected error, a
        ``disconnect()`` that failed (the channel layer's connection pool exhausted by a mass close), or daphne
        cancelling an application that took over ``application_close_timeout`` to shut down. A consumer left
        registered anywhere would be kept, with its transport, for the life of the process (docs/RELIABILITY.md,
        "Connection churn")."""
        try:
            await self._serve(scope, receive, send)
        finally:
            self._uncount()
            self._closing = True
            try:
                self.release()
            finally:
                self.auth_release()
                self._forget_channel()

    def _forget_channel(self) -> None:
        """channels-redis keeps a receive buffer per channel and deletes it when a receive is cancelled, except the
        receive that was reading Redis for the whole process when the consumer ended (its ``except Exception`` does
        not catch ``CancelledError``): an empty queue left per such connection, for the life of the process
        (the receive_buffer leak of django/channels#1703, django/daphne#373). Nothing reads this channel any more
        (the consumer's receives were cancelled and awaited): its buffer goes."""
        layer = getattr(self, "channel_layer", None)
        buffers = getattr(layer, "receive_buffer", None)
        name = getattr(self, "channel_name", None)
        if name is None:
            return
        if isinstance(layer, RedisChannelLayer):  # and a message a cancelled read hands over later is dropped
            layer.forget(name)
        elif isinstance(buffers, dict):
            buffers.pop(name, None)

    def release(self) -> None:
        """Hook: drop every in-process reference to this connection (registrations, tasks). Synchronous and
        idempotent: runs when its application ends, however it ends (``disconnect()`` may not have run)."""

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """channels' ``AsyncConsumer.__call__`` (channels 4.3.2), except that the socket's own channel outlives a
        failing channel layer (``node.receive_surviving``): a Redis fault must not close every socket with 1011.
        tests/likha_realtime/sockets/test_layer_faults.py fails if channels' version changes what it does."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)  # type: ignore[attr-defined]  # channels'
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = self._receive_from_layer
            sources.append(self.channel_receive)
        self.base_send = send
        self._direct = direct_sender(send)  # daphne's own send: event frames may be written at once (sockets.direct)
        with contextlib.suppress(StopConsumer):  # the consumer's clean exit
            await await_many_dispatch(sources, self.dispatch)  # type: ignore[attr-defined]  # the consumer's

    async def _receive_from_layer(self) -> dict[str, Any]:
        message = await receive_surviving(
            self.channel_layer, self.channel_name, lambda: self._auth_groups, self.layer_ready.clear
        )
        if message is not None:
            return message
        return {"type": LAYER_RECOVERED}  # handled in turn with the socket's other messages

    @property
    def layer_ready(self) -> asyncio.Event:
        """Cleared while this socket's channel is failing, set again once it re-read its identity after that: the
        fan-out's resync waits for it, so that what the re-read drops in flight is covered by the resync."""
        if self._layer_ready is None:
            self._layer_ready = asyncio.Event()
            self._layer_ready.set()
        return self._layer_ready

    async def likha_layer_recovered(self, message: Mapping[str, Any]) -> None:
        """The channel layer answers again: revocations or rights changes sent meanwhile may be lost, so the
        identity is re-read as on ``auth.reload``."""
        try:
            group = next((g for g in sorted(self._auth_groups) if g != PUBLIC_GROUP), PUBLIC_GROUP)
            await self.auth_reload({"type": "auth.reload", "group": group})
        finally:
            self.layer_ready.set()

    def _uncount(self) -> None:
        if self._counted:
            self.open_connections[self.socket] -= 1
            self._counted = False
            metrics.connection_closed(self.socket, self._mode)
        self._uncount_user()

    def _uncount_user(self) -> None:
        if self._counted_user is not None:
            self.user_connections[self._counted_user] -= 1
            if self.user_connections[self._counted_user] <= 0:
                del self.user_connections[self._counted_user]
            self._counted_user = None

    def auth_counted(self, error: RealtimeError | None) -> None:
        metrics.auth_result(self.socket, None if error is None else str(error.code))

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        """Every login (URL token, ``auth``, ``connection_init``, a rights reload): the connection counts against
        the user it logs in as, per server process over the three sockets; a user already at ``USER_CONN_LIMIT``
        is refused (REQUESTS_EXCEEDED, close 4429). It stays counted against that user until it closes or logs in
        as another (an expiry or a failed re-auth keeps the place of the user it waits for)."""
        key = identity.user.pk
        if key == self._counted_user:
            return None
        limit = realtime_settings.USER_CONN_LIMIT
        if limit is not None and self.user_connections[key] >= limit:
            logger.info("%s socket refused: connection limit per user reached", self.socket)
            return TooManyUserConnections()
        self._uncount_user()
        self.user_connections[key] += 1
        self._counted_user = key
        return None

    # -- message rate ------------------------------------------------------------------------------------------

    def message_rate(self) -> MessageRate:
        if self._rate is None:
            self._rate = MessageRate(
                realtime_settings.MESSAGE_RATE_POINTS,
                float(realtime_settings.MESSAGE_RATE_DURATION),
                realtime_settings.USER_MESSAGE_RATE_POINTS,
                self.user_buckets,
                clock=self.user_buckets.clock,  # one clock for both (tests replace user_buckets with a fake one)
            )
        return self._rate

    def admit_message(self) -> TooManyMessages | None:
        """Take this message's tokens (connection, and user while authenticated); the error when over the rate."""
        identity = self.auth.identity if hasattr(self, "auth") and self.auth.user is not None else None
        wait = self.message_rate().admit(None if identity is None else identity.user.pk)
        return TooManyMessages(wait) if wait else None

    def auth_policy(self) -> tuple[str, float]:
        return socket_auth(self.socket)

    async def open_socket(self) -> tuple[bool, Identity | None]:
        """Before accept: count the connection and check the URL token; ``(False, None)`` when refused (HTTP 403)."""
        limit = socket_conn_limit(self.socket)
        if limit is not None and self.open_connections[self.socket] >= limit:
            self._over_limit = True  # accepted, so that the client learns why: 4429 after the error frame
            return True, None
        self.open_connections[self.socket] += 1
        self._counted = True
        self._mode = self.auth_policy()[0]
        metrics.connection_opened(self.socket, self._mode)
        return await self.auth_url_token()

    async def socket_accepted(self, identity: Identity | None) -> bool:
        """Right after accept: refuse an over-limit socket, else start auth; ``False`` when the socket is closing."""
        if self._over_limit:
            logger.info("%s socket refused: connection limit reached", self.socket)
            await self.send_error("server", TooManyConnections())
            return False
        if not await self.auth_start(identity):
            return False
        state = "authenticated" if self.identity else "awaiting auth" if self.auth.awaiting_handshake else "public role"
        logger.info("%s socket connected (%s)", self.socket, state)
        return True

    async def close_socket(self) -> None:
        self._closing = True
        self._uncount()
        if hasattr(self, "auth"):
            await self.auth_disconnect()

    # -- frames out --------------------------------------------------------------------------------------------

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send_text(self.encode_json(frame))

    async def send_text(self, text: str) -> None:
        """Send an already encoded frame (nothing once the socket is closing, or once its client has gone: a frame
        racing the client's close is dropped, as the disconnect that follows would drop it, not an error)."""
        if self._closing:
            return
        try:
            await self.send(text_data=text)  # type: ignore[attr-defined]  # the channels consumer's send()
        except Disconnected:
            logger.debug("%s socket: frame dropped, the client has gone", self.socket)

    @property
    def sends_now(self) -> bool:
        """Whether ``send_text_now`` writes (under daphne, ``send`` not wrapped, the socket open)."""
        return self._direct is not None and not self._closing

    def send_text_now(self, text: str, prepared: PreparedFrames | None = None) -> bool | None:
        """Write an encoded frame synchronously (the fan-out's fast lane): ``True`` when written, ``False`` when
        dropped (the socket is closing or gone), ``None`` when it can only be sent through ``send_text`` (not under
        daphne, or ``send`` is wrapped: ``sockets.direct``)."""
        if self._closing:
            return False
        if self._direct is None:
            return None
        return self._direct.send_text(text, prepared)

    async def send_error(self, context: str, error: RealtimeError, uid: Any = None) -> None:
        """The error frame (on sockets whose protocol has one), then the error's close when it has one."""
        if self.auth_error_frames:
            await self.send_frame(error_frame(context, error, uid))
        if error.close_code is not None:
            await self.close_with(error.close_code)

    async def close_with(self, code: CloseCode) -> None:
        if self._closing:
            return
        self._closing = True
        await self.close(code=int(code), reason=code.reason or None)  # type: ignore[attr-defined]  # consumer's close()


class JsonSocketConsumer(RealtimeSocket, AsyncWebsocketConsumer):
    """Subclasses set ``socket`` and ``handlers`` (message type -> method name) and implement the methods.

    Dispatch is on that whitelist only; a client-supplied string is never used to look up an attribute.
    """

    # Every JSON socket answers pings; subclasses extend this whitelist with their own messages.
    handlers: ClassVar[dict[str, str]] = {"ping": "handle_ping", "pong": "handle_pong"}
    # The context of each message type's errors (others: "server"), for errors raised before its handler runs.
    contexts: ClassVar[dict[str, str]] = {"auth": "auth"}
    # Messages the rate limit lets through free: a pong runs nothing, and only proves the client alive.
    unmetered: ClassVar[frozenset[str]] = frozenset({"pong"})

    heartbeat: Heartbeat
    _heartbeat_task: asyncio.Task[None] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """channels' ``AsyncConsumer.dispatch`` (channels 4.3.2) without its ``aclose_old_connections()`` before
        every message: a hop to the database thread and back for each connect, frame, disconnect and channel-layer
        message, to close connections that these sockets never leave open — every database call they make is a
        ``database_sync_to_async``, which closes the thread's old connections before and after itself (the hops were
        ~15 % of an authenticated connect's CPU, py-spy). tests/likha_realtime/sockets/test_dispatch.py fails if
        channels' dispatch changes."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        accepted, identity = await self.open_socket()
        if not accepted:
            return
        await self.accept()
        if not await self.socket_accepted(identity):
            return
        self.heartbeat = Heartbeat()
        if realtime_settings.HEARTBEAT_ENABLED:
            self._heartbeat_task = asyncio.get_running_loop().create_task(self._beat())
        await self.on_open()

    async def disconnect(self, code: int) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        await self.close_socket()
        await self.on_close()

    def release(self) -> None:
        super().release()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self._closing:
            return
        self.heartbeat.heard()
        try:
            frame = decode_frame(
                text_data, bytes_data, realtime_settings.MESSAGE_MAX_BYTES, frozenset(self.handlers) | {"auth"}
            )
        except FrameError as error:
            if self.auth.awaiting_handshake:
                await self.authenticate_frame(None if error.uid is None else {"uid": error.uid})
            else:
                await self.send_error("server", self.admit_message() or error, error.uid)
            return
        except RealtimeError as error:  # too large: answered and closed whatever the auth state
            await self.send_error("server", error)
            return
        if frame["type"] not in self.unmetered and (over := self.admit_message()) is not None:
            # Not run; the socket stays open. (The heartbeat heard it: a limited client is not a dead one.)
            await self.send_error(self.contexts.get(frame["type"], "server"), over, frame.get("uid"))
            return
        if await self.authenticate_frame(frame):
            return
        await self._dispatch(frame)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        handler: Handler = getattr(self, self.handlers[frame["type"]])
        try:
            async with self._auth_lock:  # a message is handled entirely under the rights it arrived with
                await handler(frame)
        except RealtimeError as error:
            await self.send_error(frame["type"], error, frame.get("uid"))
        except Exception as exc:
            if database_busy(exc):  # the pool's wait ran out: the client tries again (PROTOCOL §4)
                logger.warning("%s socket: no database connection within the pool's timeout", self.socket)
                await self.send_error(frame["type"], DatabaseBusy(), frame.get("uid"))
                return
            logger.exception("%s socket: unhandled error in %s handler", self.socket, frame["type"])
            await self.send_error(frame["type"], RealtimeError(), frame.get("uid"))

    async def _beat(self) -> None:
        period = float(realtime_settings.HEARTBEAT_PERIOD)
        while not self._closing:
            await asyncio.sleep(period)
            if self.heartbeat.tick() is Beat.CLOSE:
                logger.info("%s socket closed: no message for a heartbeat period", self.socket)
                await self.close_with(CloseCode.HEARTBEAT_TIMEOUT)
                return
            await self.send_frame({"type": "ping"})

    async def handle_ping(self, message: dict[str, Any]) -> None:
        await self.send_frame(with_uid({"type": "pong"}, message.get("uid")))

    async def handle_pong(self, message: dict[str, Any]) -> None:
        """A client's answer to the heartbeat ping: receiving it was the point."""

    async def on_open(self) -> None:
        """Hook: the socket is accepted and its auth state is set."""

    async def on_close(self) -> None:
        """Hook: the socket is gone; release what it held."""
