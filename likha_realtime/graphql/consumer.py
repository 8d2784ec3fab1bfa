"""The GraphQL socket (PROTOCOL §8): strawberry's graphql-ws consumer behind ``RealtimeAuthMixin``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from strawberry.channels import GraphQLWSConsumer
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET

from likha_realtime.permissions import Principal
from realtime_auth.mixin import RealtimeAuthMixin
from realtime_auth.protocol import CloseCode

logger = logging.getLogger(__name__)

CREDENTIAL_KEYS = ("access_token", "email", "password", "refresh_token")
AUTH_MESSAGES = ("auth.revoke", "auth.reload")


class GraphQLConsumer(RealtimeAuthMixin, GraphQLWSConsumer):
    """graphql-transport-ws and legacy graphql-ws; auth failures and token expiry close 4403 "Forbidden"."""

    socket = "graphql"
    auth_error_frames: ClassVar[bool] = False  # graphql-ws clients know only close codes
    auth_close_code: ClassVar[CloseCode] = CloseCode.FORBIDDEN
    expiry_closes: ClassVar[bool] = True

    def __init__(self, schema: Any, **kwargs: Any) -> None:
        # The auth mixin owns the handshake deadline (4403); strawberry's own init timeout (4408) only backs it up.
        kwargs.setdefault("connection_init_wait_timeout", dt.timedelta(minutes=5))
        super().__init__(schema, **kwargs)
        self.principal: Principal | None = None

    async def connect(self) -> None:
        accepted, identity = await self.auth_url_token()
        if not accepted:
            return
        self.principal = await database_sync_to_async(Principal)(identity.user if identity else None)
        await super().connect()  # strawberry accepts with the negotiated subprotocol
        await self.auth_start(identity)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "auth"):
            await self.auth_disconnect()
        if self.run_task is not None:
            await super().disconnect(code)

    async def dispatch(self, message: dict[str, Any]) -> None:
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
            if not await self.auth_credentials(params, apply_failure=False):
                raise ConnectionRejectionError()
        elif self.auth.awaiting_handshake:
            raise ConnectionRejectionError()
        return UNSET

    async def on_identity_changed(self, previous: Any) -> None:
        self.principal = await database_sync_to_async(Principal)(self.user)

    async def get_context(self, request: Any, response: Any) -> Any:
        return {"request": request, "ws": request}
