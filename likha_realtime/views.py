"""``GET /server/info``: which sockets are enabled, where, and how they authenticate (PROTOCOL §9)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from likha_realtime.conf import realtime_settings, socket_enabled, socket_path
from realtime_auth.conf import SOCKET_NAMES, socket_auth


def socket_info(socket: str) -> dict[str, Any] | bool:
    if not socket_enabled(socket):
        return False
    mode, _ = socket_auth(socket)
    return {"authentication": mode, "path": socket_path(socket)}


@require_GET
def server_info(request: HttpRequest) -> JsonResponse:
    if not realtime_settings.ENABLED:
        return JsonResponse({"data": {"websocket": False}})
    websocket: dict[str, Any] = {name: socket_info(name) for name in SOCKET_NAMES}
    websocket["heartbeat"] = realtime_settings.HEARTBEAT_PERIOD if realtime_settings.HEARTBEAT_ENABLED else False
    return JsonResponse({"data": {"websocket": websocket}})
