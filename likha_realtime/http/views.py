"""HTTP routes of likha_realtime (PROTOCOL §9): ``/items/<collection>[/<id>]`` under the sockets' rights, and
``/server/info``."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from likha_realtime.access.items import Items, bounded
from likha_realtime.access.principal import Principal
from likha_realtime.conf import SOCKET_NAMES, realtime_settings, socket_auth, socket_enabled, socket_path
from likha_realtime.events.stats import stats
from likha_realtime.node import NODE_ID
from realtime_auth.authentication import BearerSession
from realtime_auth.http import ApiError, ContractAPIView, ContractJSONRenderer
from realtime_auth.wire import ErrorCode, RealtimeError

QUERY_PARAMS = ("fields", "filter", "sort", "limit", "offset", "page", "meta")
_STATUS = {ErrorCode.FORBIDDEN: status.HTTP_403_FORBIDDEN}


def http_error(error: RealtimeError) -> ApiError:
    return ApiError(_STATUS.get(error.code, status.HTTP_400_BAD_REQUEST), str(error.code), error.message)


class ItemsRenderer(ContractJSONRenderer):
    """Values as the socket sends them (its frames use DjangoJSONEncoder): decimals as text, never as floats."""

    encoder_class = DjangoJSONEncoder


class ItemsView(ContractAPIView):
    """``Authorization: Bearer`` or the public role; every other policy is ``ContractAPIView``'s, not the host's."""

    authentication_classes = [BearerSession]
    renderer_classes = [ItemsRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RealtimeError):
            exc = http_error(exc)
        return super().handle_exception(exc)

    def items(self, request: Request, collection: str, action: str) -> Items:
        query = {key: request.query_params[key] for key in request.query_params}
        return Items(Principal(self.authenticated_user(request)), collection, action, query or None)

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
            items.delete(bounded(request.data))
        else:
            raise ApiError(status.HTTP_400_BAD_REQUEST, "INVALID_PAYLOAD", "Send the keys to delete as a JSON array.")
        return Response(status=status.HTTP_204_NO_CONTENT)


def socket_info(socket: str) -> dict[str, Any] | bool:
    if not socket_enabled(socket):
        return False
    mode, _ = socket_auth(socket)
    return {"authentication": mode, "path": socket_path(socket)}


def _is_admin(request: HttpRequest) -> bool:
    """A valid ``Authorization: Bearer`` of an active superuser (anything else counts as the public role here)."""
    try:
        found = BearerSession().authenticate(request)  # type: ignore[arg-type]  # reads only HttpRequest.META
    except APIException:
        return False
    return found is not None and bool(getattr(found[0], "is_superuser", False) and found[0].is_active)


def rate_limit(points: int | None) -> dict[str, Any] | bool:
    """Directus's ``rateLimit`` shape: ``{"points", "duration"}`` (seconds), ``false`` when unlimited."""
    if points is None:
        return False
    return {"points": points, "duration": realtime_settings.MESSAGE_RATE_DURATION}


def socket_limits() -> dict[str, Any]:
    """The limits a socket client needs to know (PROTOCOL §4), under ``websocket.limits``."""
    return {
        "message_max_bytes": realtime_settings.MESSAGE_MAX_BYTES,
        "messages": rate_limit(realtime_settings.MESSAGE_RATE_POINTS),
        "user_messages": rate_limit(realtime_settings.USER_MESSAGE_RATE_POINTS),
        "connections_per_user": realtime_settings.USER_CONN_LIMIT,
        "subscriptions": realtime_settings.SUBSCRIPTIONS_MAX,
        "items_ids": realtime_settings.ITEMS_MAX_IDS,
    }


@require_GET
def server_info(request: HttpRequest) -> JsonResponse:
    """Which sockets are where and how they authenticate; for admins also this process's event counters."""
    if not realtime_settings.ENABLED:
        websocket: dict[str, Any] | bool = False
    else:
        websocket = {name: socket_info(name) for name in SOCKET_NAMES}
        websocket["heartbeat"] = realtime_settings.HEARTBEAT_PERIOD if realtime_settings.HEARTBEAT_ENABLED else False
        websocket["limits"] = socket_limits()
    # As Directus advertises its rate limiter: here, the messages one socket connection may send.
    messages = rate_limit(realtime_settings.MESSAGE_RATE_POINTS) if realtime_settings.ENABLED else False
    data: dict[str, Any] = {"rateLimit": messages, "websocket": websocket}
    if _is_admin(request):
        data["events"] = {"node": NODE_ID, **stats.as_dict()}
    return JsonResponse({"data": data})
