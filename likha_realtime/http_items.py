"""HTTP ``/items/<collection>[/<id>]`` (PROTOCOL §9): the same rights, rules and events as the socket."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from likha_realtime.items import Items
from likha_realtime.permissions import Principal
from realtime_auth import tokens
from realtime_auth.http import ApiError
from realtime_auth.protocol import ErrorCode, RealtimeError

QUERY_PARAMS = ("fields", "filter", "sort", "limit", "offset", "page", "meta")
_STATUS = {ErrorCode.FORBIDDEN: status.HTTP_403_FORBIDDEN}


def http_error(error: RealtimeError) -> ApiError:
    return ApiError(_STATUS.get(error.code, status.HTTP_400_BAD_REQUEST), str(error.code), error.message)


class BearerSession(BaseAuthentication):
    """``Authorization: Bearer <access token>`` checked as the sockets check it: signature, expiry, an active user
    and a session not ended by logout or revocation (simplejwt's own class accepts a logged-out session's tokens).
    No Bearer header: the public role."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        invalid = ApiError(status.HTTP_401_UNAUTHORIZED, "INVALID_TOKEN", "Invalid token.")
        if len(parts) != 2:
            raise invalid
        try:
            return tokens.verify_access(parts[1].decode("ascii")).user, None
        except (UnicodeDecodeError, tokens.InvalidToken) as exc:
            raise invalid from exc

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ItemsRenderer(JSONRenderer):
    """Values as the socket sends them (its frames use DjangoJSONEncoder): decimals as text, never as floats."""

    encoder_class = DjangoJSONEncoder


class ItemsView(APIView):
    authentication_classes = [BearerSession]
    permission_classes: list[Any] = []
    renderer_classes = [ItemsRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RealtimeError):
            exc = http_error(exc)
        return super().handle_exception(exc)

    def items(self, request: Request, collection: str, action: str) -> Items:
        query = {key: request.query_params[key] for key in request.query_params}
        return Items(Principal(request.user), collection, action, query or None)

    def get(self, request: Request, collection: str, pk: str | None = None) -> Response:
        items = self.items(request, collection, "read")
        if pk is not None:
            return Response({"data": items.read_one(pk)})
        body: dict[str, Any] = {"data": items.read_many()}
        meta = items.meta()
        if meta:
            body["meta"] = meta
        return Response(body)

    def post(self, request: Request, collection: str, pk: str | None = None) -> Response:
        if pk is not None:
            raise ApiError(status.HTTP_405_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "POST creates items: no id.")
        created = self.items(request, collection, "create").create(request.data)
        return Response({"data": created})

    def patch(self, request: Request, collection: str, pk: str | None = None) -> Response:
        items = self.items(request, collection, "update")
        if pk is not None:
            return Response({"data": items.update([pk], request.data, many=False)})
        body = request.data if isinstance(request.data, dict) else {}
        keys, data = body.get("keys"), body.get("data")
        if not isinstance(keys, list) or not keys:
            raise ApiError(status.HTTP_400_BAD_REQUEST, "INVALID_PAYLOAD", '"keys" must be a non-empty array.')
        return Response({"data": items.update(keys, data, many=True)})

    def delete(self, request: Request, collection: str, pk: str | None = None) -> Response:
        items = self.items(request, collection, "delete")
        if pk is not None:
            items.delete([pk])
        elif isinstance(request.data, list) and request.data:
            items.delete(request.data)
        else:
            raise ApiError(status.HTTP_400_BAD_REQUEST, "INVALID_PAYLOAD", "Send the keys to delete as a JSON array.")
        return Response(status=status.HTTP_204_NO_CONTENT)
