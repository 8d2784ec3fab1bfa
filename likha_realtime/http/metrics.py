"""``GET /metrics``: every metric of ``likha_realtime.metrics`` in Prometheus text format, for an active superuser's
access token, one of ``METRICS_TOKENS`` (a scraper's bearer token) or a client in ``METRICS_ALLOWED_ADDRESSES``."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rest_framework.exceptions import APIException

from likha_realtime.conf import realtime_settings
from likha_realtime.metrics import exposition
from realtime_auth.authentication import BearerSession

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not realtime_settings.METRICS_ENABLED:
        raise Http404
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """``None`` when the request may read the metrics, else the answer: 401 for a token that is not valid, 403 for
    no credentials or those of a user who is not an active superuser."""
    if _allowed_address(request.META.get("REMOTE_ADDR")):
        return None
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()  # any whitespace, as simplejwt splits it
    if len(parts) == 2 and parts[0].lower() == "bearer":
        if _scraper_token(parts[1]):
            return None
        try:
            found = BearerSession().authenticate(request)  # type: ignore[arg-type]  # reads only HttpRequest.META
        except APIException:
            return _error(401, "INVALID_TOKEN", "Invalid token.")
        user = found[0] if found else None
        if user is not None and user.is_active and user.is_superuser:
            return None
    return _error(403, "FORBIDDEN", "You don't have permission to access this.")


def _scraper_token(presented: str) -> bool:
    """Compared with every configured token in constant time, as digests of equal length (``compare_digest`` of
    texts of different lengths would tell a token's length; no early exit tells which one matched)."""
    digest = hashlib.sha256(presented.encode()).digest()
    matched = False
    for token in realtime_settings.METRICS_TOKENS:
        matched |= hmac.compare_digest(digest, hashlib.sha256(str(token).encode()).digest())
    return matched


def _allowed_address(remote: str | None) -> bool:
    networks = realtime_settings.METRICS_ALLOWED_ADDRESSES
    if not networks or not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network, strict=False) for network in networks)


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
