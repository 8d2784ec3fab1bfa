"""The GraphQL socket (PROTOCOL §8): strawberry's graphql-ws consumer with the shared socket lifecycle."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from channels.db import database_sync_to_async
from graphql import GraphQLError
from strawberry.channels import GraphQLWSConsumer
from strawberry.channels.handlers.base import ChannelsMessage
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET

from likha_realtime import metrics, origins
from likha_realtime.access.principal import Principal
from likha_realtime.access.subscriptions import removed
from likha_realtime.backpressure import Backlog
from likha_realtime.conf import realtime_settings
from likha_realtime.graphql.limits import too_many_tokens
from likha_realtime.sockets.base import LAYER_RECOVERED, RealtimeSocket
from likha_realtime.sockets.graphql_messages import invalid_reason
from likha_realtime.wire.codec import FrameTooLarge, check_size, loads_bounded
from likha_realtime.wire.errors import TooManySubscriptions, TooManyUserConnections
from realtime_auth import usernames
from realtime_auth.errors import LoginThrottled
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode, RealtimeError, error_frame

logger = logging.getLogger(__name__)

TOKEN_KEYS = ("access_token", "password", "refresh_token")


def credential_keys() -> tuple[str, ...]:
    """``connection_init`` keys that ask for a login: the tokens, ``password``, and the keys naming a user (``email``
    and the host user model's ``USERNAME_FIELD``, e.g. ``username``): one of them alone is a failed login, not the
    public role."""
    return (*TOKEN_KEYS, *usernames.login_fields())


AUTH_MESSAGES = ("auth.revoke", "auth.reload")


def operation_refusal(view: Any, operations: Mapping[str, Any], payload: Any) -> RealtimeError | GraphQLError | None:
    """Why a new operation (``subscribe``, legacy ``start``) is not run, checked before strawberry runs it: over the
    message rate, over ``SUBSCRIPTIONS_MAX`` operations in flight, over ``GRAPHQL_MAX_TOKENS`` (strawberry would close
    4400 on graphql-core's parse error; an ``error`` for the id leaves the socket open). ``None``: run it."""
    over: RealtimeError | None = view.admit_message()
    if over is not None:
        return over
    limit = int(realtime_settings.SUBSCRIPTIONS_MAX)
    if len(operations) >= limit:
        return TooManySubscriptions(limit)
    query = payload.get("query") if isinstance(payload, dict) else None
    return too_many_tokens(query) if isinstance(query, str) else None


def formatted(error: RealtimeError | GraphQLError) -> dict[str, Any]:
    if isinstance(error, RealtimeError):
        error = GraphQLError(error.message, extensions={"code": str(error.code)})
    return error.formatted  # type: ignore[return-value]  # GraphQLFormattedError is a TypedDict


class CountedOperations(dict[str, Any]):
    """strawberry's operations of one connection (by id), counted in the subscriptions metric as they come and go."""

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self:
            metrics.subscriptions_changed("graphql", 1)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        metrics.subscriptions_changed("graphql", -1)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            metrics.subscriptions_changed("graphql", -1)
        return super().pop(key, *default)

    def clear(self) -> None:
        metrics.subscriptions_changed("graphql", -len(self))
        super().clear()


class _TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's graphql-transport-ws handler, known to its consumer (which ends operations on rights)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operations = CountedOperations()
        cast(Any, self.view).protocol_handler = self

    async def handle_subscribe(self, message: Any) -> None:
        """A new operation over a limit gets an ``error`` message for its id (its ``subscribe`` context), and the
        socket stays open; strawberry's own checks (not acknowledged: 4401, a duplicate id: 4409) come first."""
        if self.connection_acknowledged and message["id"] not in self.operations:
            refusal = operation_refusal(self.view, self.operations, message.get("payload"))
            if refusal is not None:
                await self.send_message(
                    cast(Any, {"id": message["id"], "type": "error", "payload": [formatted(refusal)]})
                )
                return
        await super().handle_subscribe(message)

    async def handle_pong(self, message: Any) -> None:
        """Unmetered: it runs nothing."""

    async def handle_message(self, message: Any) -> None:
        """A message of the wrong shape closes 4400 with the rule it broke (strawberry's handler task died on it).
        Nothing is handled once the socket closes (strawberry went on with the messages already received)."""
        if cast(Any, self.view).closed:
            return
        reason = invalid_reason(message)
        if reason is not None:
            await self.handle_invalid_message(reason)
            return
        await super().handle_message(message)

    async def handle_ping(self, message: Any) -> None:
        # A client pinging beyond the message rate is not keeping a connection alive: graphql-ws has no error
        # message outside an operation, so the close says it (4429).
        if cast(Any, self.view).admit_message() is not None:
            await cast(Any, self.view).close_with(CloseCode.TOO_MANY_REQUESTS)
            return
        await self._pong(message)

    async def _pong(self, message: Any) -> None:
        """``pong`` echoes the ``ping``'s payload, as the reference graphql-ws server does (strawberry drops it): an
        object comes back as sent, a missing or null payload gives a ``pong`` without one; any other payload breaks
        the protocol (close 4400, as graphql-ws validates it)."""
        payload = message.get("payload")
        if payload is None:
            await self.send_message({"type": "pong"})
        elif isinstance(payload, dict):
            await self.send_message({"type": "pong", "payload": payload})
        else:
            await self.handle_invalid_message('"ping" payload must be an object')


class _LegacyWSHandler(BaseGraphQLWSHandler[Any, Any]):
    """strawberry's legacy graphql-ws handler, known to its consumer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks = CountedOperations()
        cast(Any, self.view).protocol_handler = self

    async def handle_start(self, message: Any) -> None:
        """As graphql-transport-ws's ``subscribe``: an ``error`` for the id (this protocol's one error object)."""
        if self.connection_acknowledged:
            others = {key: task for key, task in self.tasks.items() if key != message["id"]}  # the same id replaces
            refusal = operation_refusal(self.view, others, message.get("payload"))
            if refusal is not None:
                await self.send_message(
                    cast(Any, {"type": "error", "id": message["id"], "payload": formatted(refusal)})
                )
                return
        await super().handle_start(message)

    async def handle_message(self, message: Any) -> None:
        """The legacy protocol has no in-band answer to a malformed message: close 4400 with the broken rule."""
        if cast(Any, self.view).closed:
            return
        reason = invalid_reason(message, legacy=True)
        if reason is not None:
            await self.websocket.close(code=int(CloseCode.BAD_REQUEST), reason=reason)
            return
        await super().handle_message(message)


class GraphQLConsumer(RealtimeSocket, GraphQLWSConsumer):
    """graphql-transport-ws and legacy graphql-ws; auth failures and token expiry close 4403 "Forbidden".

    graphql-ws has its own keep-alive (``ping``/``pong`` messages, answered by strawberry), so the JSON sockets'
    heartbeat does not apply here; the connection limit and auth do.
    """

    socket = "graphql"
    _close_sent = False
    graphql_transport_ws_handler_class = _TransportWSHandler
    graphql_ws_handler_class = _LegacyWSHandler

    def decode_json(self, data: str | bytes) -> object:
        # Too deep a frame is "not JSON" (graphql-transport-ws: close 4400), never a RecursionError.
        return loads_bounded(data)

    auth_error_frames: ClassVar[bool] = False  # graphql-ws clients know only close codes
    auth_close_code: ClassVar[CloseCode] = CloseCode.FORBIDDEN
    expiry_closes: ClassVar[bool] = True

    def __init__(self, schema: Any, **kwargs: Any) -> None:
        # The auth mixin owns the handshake deadline (4403); strawberry's own init timeout (4408) only backs it up.
        kwargs.setdefault("connection_init_wait_timeout", dt.timedelta(minutes=5))
        kwargs.setdefault("max_subscriptions_per_connection", None)  # SUBSCRIPTIONS_MAX, with our code (handlers)
        super().__init__(schema, **kwargs)
        self.principal: Principal | None = None
        self._url_identity: Identity | None = None
        self.listeners: set[Any] = set()  # running subscriptions (graphql.schema.Listener)
        self.held_events = Backlog()  # bytes its listeners have queued (likha_realtime.backpressure)
        self.protocol_handler: Any = None  # strawberry's handler of the negotiated subprotocol
        self._refusal: RealtimeError | None = None  # why the last login was refused (authorize)
        self._close_sent = False
        self._rejection: CloseCode | None = None  # the close of a rejected connection_init, when not 4403

    async def connect(self) -> None:
        accepted, self._url_identity = await self.open_socket()
        if accepted:
            await super().connect()  # strawberry negotiates the subprotocol and accepts (create_websocket_response)

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        """strawberry asks only for a cross-origin handshake (it lets a missing and a same-origin ``Origin`` pass):
        the sockets' allow-list decides (``likha_realtime.origins``, which the router's guard applied already),
        not strawberry's own list, which allows no other origin."""
        host, _ = origins.request_host(request.scope.get("headers") or [])
        return origins.origin_allowed(origin, host)

    async def create_websocket_response(self, request: Any, subprotocol: str | None) -> Any:
        """strawberry's hook that accepts the socket: the shared lifecycle continues right after."""
        response = await super().create_websocket_response(request, subprotocol)
        accepted = await self.socket_accepted(self._url_identity)
        if accepted and self.principal is None and not self.auth.awaiting_handshake:  # as the REST socket's on_open
            self.principal = await database_sync_to_async(Principal)(self.user)
        return response

    @property
    def closed(self) -> bool:
        """The socket is closing: a close was sent (ours or strawberry's), or the client left."""
        return self._closing

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Every close, strawberry's included, marks the socket closing; only the first is sent, so a close of ours
        (4429) is not followed by strawberry's own (4403).

        strawberry closes a rejected ``connection_init`` with 4403 (legacy graphql-ws: ``connection_error``, then
        1011); a login refused by the login throttle closes 4429 "Too Many Requests" instead, which graphql-ws
        clients treat as final (no reconnect loop with the same credentials)."""
        if self._close_sent:
            return
        self._close_sent = self._closing = True
        if self._rejection is not None:
            code, reason = int(self._rejection), self._rejection.reason
        await super().close(code=code, reason=reason)

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """Nothing goes out after a close: daphne refuses it (autobahn raises ``Disconnected`` into the consumer,
        logged as an exception inside the application). strawberry's operations and pongs may still try."""
        if self._closing:
            return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Frames go to strawberry's protocol handler, except once the socket is closing (refused, over its limit,
        expired: nothing more runs for it) and frames over ``MESSAGE_MAX_BYTES`` (close 4413)."""
        if self._closing:
            return
        try:
            check_size(text_data, bytes_data, int(realtime_settings.MESSAGE_MAX_BYTES))
        except FrameTooLarge as error:
            await self.send_error("server", error)
            return
        await super().receive(text_data, bytes_data)

    async def disconnect(self, code: int) -> None:
        await self.close_socket()
        if self.run_task is not None:
            await super().disconnect(code)
        self.release()

    def release(self) -> None:
        super().release()
        if self.run_task is not None and not self.run_task.done():
            # The connection ended without disconnect() (an error, or cancelled by the server): strawberry's protocol
            # task would wait for messages forever, holding this consumer and its operations; it is told the
            # socket is gone, as disconnect() tells it, and ends its operations itself.
            self.message_queue.put_nowait({"message": None, "disconnected": True})
        for listener in list(self.listeners):  # one whose stream was never iterated has no generator to stop it
            listener.stop()

    async def dispatch(self, message: ChannelsMessage) -> None:
        # strawberry queues channel-layer messages for its own listeners; revocations are ours.
        if message.get("type") in AUTH_MESSAGES:
            handler = self.auth_revoke if message["type"] == "auth.revoke" else self.auth_reload
            await handler(message)
            return
        if message.get("type") == LAYER_RECOVERED:  # ours too (sockets/base.py)
            await self.likha_layer_recovered(message)
            return
        await super().dispatch(message)

    async def on_ws_connect(self, context: Any) -> Any:
        """``connection_init``: credentials in the payload log in (any mode); handshake mode requires them."""
        params = context.get("connection_params") if isinstance(context, dict) else None
        params = params if isinstance(params, dict) else {}
        if any(key in params for key in credential_keys()):
            self._refusal = None
            if not await self.auth_credentials(params):
                if isinstance(self.auth_refusal, LoginThrottled):  # over a login limit: 4429, not 4403
                    self._rejection = CloseCode.TOO_MANY_REQUESTS
                    raise ConnectionRejectionError(error_frame("auth", self.auth_refusal)["error"])
                if isinstance(self._refusal, TooManyUserConnections):
                    await self.close_with(CloseCode.TOO_MANY_REQUESTS)  # strawberry's 4403 after it is not sent
                raise ConnectionRejectionError()
        elif self.auth.awaiting_handshake:
            raise ConnectionRejectionError()
        return UNSET

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        self._refusal = await super().authorize(identity)
        return self._refusal

    # -- subscriptions under the socket's current rights -------------------------------------------------------

    def listen(self, listener: Any) -> None:
        """A subscription operation started (``graphql.schema.Listener``): it follows this socket's rights."""
        self.listeners.add(listener)

    def unlisten(self, listener: Any) -> None:
        self.listeners.discard(listener)

    async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
        """New rights (a login, or a change of the user's or the public role's groups and permissions): every
        running subscription is re-planned under them — narrowed where they still read it, ended with an ``error``
        message for its operation id where they don't. Nothing is delivered while they are read."""
        for listener in list(self.listeners):
            listener.suspend()
        self.principal = principal = await database_sync_to_async(Principal)(self.user)
        # Listeners that start after this snapshot plan under the new principal themselves (Listener.start).
        listeners = list(self.listeners)
        plans = await database_sync_to_async(lambda: [listener.plan(principal) for listener in listeners])()
        for listener, subscription in zip(listeners, plans, strict=True):
            if subscription.plan is not None:
                listener.resume(subscription)
            elif not listener.ended:
                await self._end_operation(listener, removed())

    async def _end_operation(self, listener: Any, error: RealtimeError) -> None:
        """graphql-transport-ws: an ``error`` message for the operation (then nothing more for its id); legacy
        graphql-ws: its ``error`` message, then its ``complete``. The listener's generator then returns."""
        handler = self.protocol_handler
        formatted = GraphQLError(error.message, extensions={"code": str(error.code)}).formatted
        if isinstance(handler, BaseGraphQLTransportWSHandler):
            for operation in list(handler.operations.values()):
                if operation.task is listener.task:
                    await operation.send_operation_message(
                        {"id": operation.id, "type": "error", "payload": [formatted]}
                    )
        elif isinstance(handler, BaseGraphQLWSHandler):
            for operation_id, task in list(handler.tasks.items()):
                if task is listener.task:
                    await handler.send_message({"type": "error", "id": operation_id, "payload": formatted})
        listener.end()

    async def get_context(self, request: Any, response: Any) -> Any:
        return {"request": request, "ws": request}
