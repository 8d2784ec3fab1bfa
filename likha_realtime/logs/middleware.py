"""``RequestLogMiddleware``: the request line of ``logs.requests`` from a Django middleware, for hosts that serve HTTP
without ``request_log`` (WSGI, or an ASGI application they do not wrap).

Not needed with ``likha_realtime.routing.build_application`` or ``request_log``: they log every HTTP request
already, and this middleware stays silent for a request they log, so using both never doubles a line. Put it first
in ``MIDDLEWARE`` so that its status and time are those of the whole stack. It sees only what reaches Django's
middleware: a request whose handler raises before the middleware chain answers is logged by ``request_log`` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from likha_realtime.logs.requests import LOGGED_SCOPE_KEY, request_line

logger = logging.getLogger("likha_realtime.requests")


class RequestLogMiddleware:
    sync_capable = True
    async_capable = True
    timer: Callable[[], float] = time.monotonic

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        if logged_by_request_log(request):
            return self.get_response(request)
        started = self.timer()
        response = self.get_response(request)
        self._log(request, response, started)
        return response

    async def _acall(self, request: Any) -> Any:
        if logged_by_request_log(request):
            return await self.get_response(request)
        started = self.timer()
        response = await self.get_response(request)
        self._log(request, response, started)
        return response

    def _log(self, request: Any, response: Any, started: float) -> None:
        logger.info(*request_line(request.method, request.path, response.status_code, self.timer() - started))


def logged_by_request_log(request: Any) -> bool:
    """Whether ``request`` came through ``request_log`` (an ASGI request's scope says so)."""
    scope = getattr(request, "scope", None)
    return isinstance(scope, dict) and bool(scope.get(LOGGED_SCOPE_KEY))
