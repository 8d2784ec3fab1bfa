"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: database and channel layer reachable), for load
balancers and orchestrators; no authentication, and nothing in the answers but each check's state."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from likha_realtime import health
from likha_realtime.conf import realtime_settings


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    checks = await health.probe.result(realtime_settings.HEALTH_TIMEOUT, realtime_settings.HEALTH_MAX_AGE)
    ready = all(result == health.OK for result in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
