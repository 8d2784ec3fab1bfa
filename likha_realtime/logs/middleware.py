"""``RequestLogMiddleware``: one INFO line per HTTP request — method, path (no query string), status, duration."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

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
        started = self.timer()
        response = self.get_response(request)
        self._log(request, response, started)
        return response

    async def _acall(self, request: Any) -> Any:
        started = self.timer()
        response = await self.get_response(request)
        self._log(request, response, started)
        return response

    def _log(self, request: Any, response: Any, started: float) -> None:
        elapsed_ms = (self.timer() - started) * 1000
        logger.info("%s %s %s %.0fms", request.method, request.path, response.status_code, elapsed_ms)
