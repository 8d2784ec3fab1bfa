"""The GraphQL socket (PROTOCOL §8): strawberry's graphql-ws consumer with the shared socket lifecycle."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from strawberry.channels import GraphQLWSConsumer
from strawberry.channels.handlers.base import ChannelsMessage
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET

from likha_realtime.access.principal import Principal
from likha_realtime.conf import realtime_settings
from likha_realtime.sockets.base import RealtimeSocket
from likha_realtime.wire.codec import FrameTooLarge, check_size
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode

logger = logging.getLogger(__name__)

CREDENTIAL_KEYS = ("access_token", "email", "password", "refresh_token")
AUTH_MESSAGES = ("auth.revoke", "auth.reload")


class GraphQLConsumer(RealtimeSocket, GraphQLWSConsumer):
    """graphql-transport-ws and legacy graphql-ws; auth failures and token expiry close 4403 "Forbidden".

    graphql-ws has its own keep-alive (``ping``/``pong`` messages, answered by strawberry), so the JSON sockets'
    heartbeat does not apply here; the connection limit and auth do.
    """

    socket = "graphql"
    auth_error_frames: ClassVar[bool] = False  # graphql-ws clients know only close codes
    auth_close_code: ClassVar[CloseCode] = CloseCode.FORBIDDEN
    expiry_closes: ClassVar[bool] = True

    def __init__(self, schema: Any, **kwargs: Any) -> None:
        # The auth mixin owns the handshake deadline (4403); strawberry's own init timeout (4408) only backs it up.
        kwargs.setdefault("connection_init_wait_timeout", dt.timedelta(minutes=5))
        super().__init__(schema, **kwargs)
        self.principal: Principal | None = None
        self._url_identity: Identity | None = None

    async def connect(self) -> None:
        accepted, self._url_identity = await self.open_socket()
        if accepted:
            await super().connect()  # strawberry negotiates the subprotocol and accepts (create_websocket_response)

    async def create_websocket_response(self, request: Any, subprotocol: str | None) -> Any:
        """strawberry's hook that accepts the socket: the shared lifecycle continues right after."""
        response = await super().create_websocket_response(request, subprotocol)
        if await self.socket_accepted(self._url_identity) and self.principal is None:
            self.principal = await database_sync_to_async(Principal)(self.user)
        return response

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
        if any(key in params for key in CREDENTIAL_KEYS):
            if not await self.auth_credentials(params):
                raise ConnectionRejectionError()
        elif self.auth.awaiting_handshake:
            raise ConnectionRejectionError()
        return UNSET

    async def on_identity_changed(self, previous: Any) -> None:
        self.principal = await database_sync_to_async(Principal)(self.user)

    async def get_context(self, request: Any, response: Any) -> Any:
        return {"request": request, "ws": request}
