"""The GraphQL socket (PROTOCOL §8): strawberry's graphql-ws consumer with the shared socket lifecycle."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar, cast

from channels.db import database_sync_to_async
from graphql import GraphQLError
from strawberry.channels import GraphQLWSConsumer
from strawberry.channels.handlers.base import ChannelsMessage
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET

from likha_realtime import origins
from likha_realtime.access.principal import Principal
from likha_realtime.access.subscriptions import removed
from likha_realtime.conf import realtime_settings
from likha_realtime.sockets.base import RealtimeSocket
from likha_realtime.sockets.graphql_messages import invalid_reason
from likha_realtime.wire.codec import FrameTooLarge, check_size, loads_bounded
from realtime_auth import usernames
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode, RealtimeError

logger = logging.getLogger(__name__)

TOKEN_KEYS = ("access_token", "password", "refresh_token")


def credential_keys() -> tuple[str, ...]:
    """``connection_init`` keys that ask for a login: the tokens, ``password``, and the keys naming a user (``email``
    and the host user model's ``USERNAME_FIELD``, e.g. ``username``): one of them alone is a failed login, not the
    public role."""
    return (*TOKEN_KEYS, *usernames.login_fields())


AUTH_MESSAGES = ("auth.revoke", "auth.reload")


class _TransportWSHandler(BaseGraphQLTransportWSHandler[Any, Any]):
    """strawberry's graphql-transport-ws handler, known to its consumer (which ends operations on rights)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(Any, self.view).protocol_handler = self

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
        cast(Any, self.view).protocol_handler = self

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
        super().__init__(schema, **kwargs)
        self.principal: Principal | None = None
        self._url_identity: Identity | None = None
        self.listeners: set[Any] = set()  # running subscriptions (graphql.schema.Listener)
        self.protocol_handler: Any = None  # strawberry's handler of the negotiated subprotocol

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
        if await self.socket_accepted(self._url_identity) and self.principal is None:
            self.principal = await database_sync_to_async(Principal)(self.user)
        return response

    @property
    def closed(self) -> bool:
        """The socket is closing: a close was sent (ours or strawberry's), or the client left."""
        return self._closing

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Every close, strawberry's included, marks the socket closing; only the first is sent."""
        if self._close_sent:
            return
        self._close_sent = self._closing = True
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
        for listener in list(self.listeners):  # one whose stream was never iterated has no generator to stop it
            listener.stop()

    async def dispatch(self, message: ChannelsMessage) -> None:
        # strawberry queues channel-layer messages for its own listeners; revocations are ours.
        if message.get("type") in AUTH_MESSAGES:
            handler = self.auth_revoke if message["type"] == "auth.revoke" else self.auth_reload
            await handler(message)
            return
        await super().dispatch(message)

    async def on_ws_connect(self, context: Any) -> Any:
        """``connection_init``: credentials in the payload log in (any mode); handshake mode requires them."""
        params = context.get("connection_params") if isinstance(context, dict) else None
        params = params if isinstance(params, dict) else {}
        if any(key in params for key in credential_keys()):
            if not await self.auth_credentials(params):
                raise ConnectionRejectionError()
        elif self.auth.awaiting_handshake:
            raise ConnectionRejectionError()
        return UNSET

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
