"""The HTTP error envelope (``{"errors":[{"message","extensions":{"code"}}]}``) for every DRF error, and
``ContractAPIView``: the base of our DRF views, whose answers depend on no ``REST_FRAMEWORK`` setting of the host."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from realtime_auth.busy import RETRY_AFTER_SECONDS, DatabaseBusy, database_busy
from realtime_auth.errors import LoginThrottled
from realtime_auth.wire import ErrorCode

_CODES = {
    status.HTTP_400_BAD_REQUEST: "INVALID_PAYLOAD",
    status.HTTP_401_UNAUTHORIZED: "INVALID_CREDENTIALS",
    status.HTTP_403_FORBIDDEN: "FORBIDDEN",
    status.HTTP_404_NOT_FOUND: "ROUTE_NOT_FOUND",
    status.HTTP_405_METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
    status.HTTP_429_TOO_MANY_REQUESTS: "REQUESTS_EXCEEDED",
}

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An HTTP error with an explicit envelope code, e.g. ``ApiError(401, "INVALID_TOKEN", "Invalid token.")``."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        self.status_code = status_code
        self.envelope_code = code
        super().__init__(message, code)


class TooManyLogins(exceptions.Throttled):
    """429 ``REQUESTS_EXCEEDED`` for a throttled login: the ``LoginThrottled`` message (the same words as the
    sockets' frame) and ``Retry-After`` in whole seconds (DRF's exception handler sets it from ``wait``)."""

    def __init__(self, error: LoginThrottled) -> None:
        exceptions.APIException.__init__(self, error.message, "throttled")
        self.wait = math.ceil(error.wait)


def error_response(status_code: int, code: str, message: str) -> Response:
    return Response({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if database_busy(exc):  # the pool's wait ran out: try again, not a server bug
        logger.warning("HTTP request answered 503: no database connection within the pool's timeout")
        busy = error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE, ErrorCode.SERVICE_UNAVAILABLE, DatabaseBusy.default_message
        )
        busy["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return busy
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.envelope_code, str(exc.detail))
    code = _CODES.get(response.status_code, "INTERNAL")
    errors = [{"message": message, "extensions": {"code": code}} for message in _messages(response.data)]
    response.data = {"errors": errors or [{"message": "Error.", "extensions": {"code": code}}]}
    return response


def _messages(data: Any, prefix: str = "") -> list[str]:
    """Flatten DRF's detail structure into readable messages naming the field."""
    if isinstance(data, dict):
        if set(data) == {"detail"}:
            return _messages(data["detail"], prefix)
        out: list[str] = []
        for key, value in data.items():
            name = key if key not in ("non_field_errors", api_settings.NON_FIELD_ERRORS_KEY) else ""
            out += _messages(value, f"{prefix}{name}: " if name else prefix)
        return out
    if isinstance(data, list):
        return [message for item in data for message in _messages(item, prefix)]
    return [f"{prefix}{data}"]


# -- views that keep the contract whatever the host's REST_FRAMEWORK says ---------------------------------------


class ContractJSONRenderer(JSONRenderer):
    """JSON as PROTOCOL §9 shows it. DRF's ``JSONRenderer`` takes these three from the host's ``REST_FRAMEWORK``
    (``UNICODE_JSON``, ``COMPACT_JSON``, ``STRICT_JSON``) when it is imported; ours are fixed."""

    ensure_ascii = False
    compact = True
    strict = True

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        """UTF-8 JSON; a string UTF-8 cannot carry (a lone surrogate a message quotes) goes out as its JSON escape
        (``\\ud800``) rather than failing the response with an HTTP 500."""
        try:
            rendered: bytes = super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            rendered = _escaped(type(self))().render(data, accepted_media_type, renderer_context)
        return rendered


def _escaped(renderer: type[ContractJSONRenderer]) -> type[ContractJSONRenderer]:
    """``renderer`` (its encoder included) with every character outside ASCII as its JSON escape (made when needed:
    only an answer that quotes such text takes this path)."""
    return type(f"Escaped{renderer.__name__}", (renderer,), {"ensure_ascii": True})


class ContractJSONParser(JSONParser):
    """JSON bodies only (other media types are 415); ``NaN`` and ``Infinity`` refused whatever ``STRICT_JSON`` says."""

    strict = True

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:  # [[[…]]] deeper than the parser: a malformed body (400), not an HTTP 500
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Always the view's first renderer: neither ``Accept`` nor ``?format=`` (``URL_FORMAT_OVERRIDE``) can select
    another shape, or answer 404/406 instead of the contract's reply. Parsers are chosen by ``Content-Type`` as in
    DRF."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ContractAPIView(APIView):
    """An ``APIView`` whose answers are PROTOCOL §9's under any host ``REST_FRAMEWORK`` settings.

    Every policy that DRF reads from the host's defaults is set here: the error envelope (``get_exception_handler``,
    not the global ``EXCEPTION_HANDLER``, so the host's own API keeps its handler), no authentication (subclasses
    name theirs: no ``SessionAuthentication``, so no CSRF demand and no session login), no permission classes, no
    throttles, JSON in and out only, no versioning, and ``OPTIONS`` answered 405 (no metadata: view descriptions are
    not published). ``APIView`` has no pagination; our views paginate with the query's ``limit``/``offset``/``page``.
    """

    authentication_classes: Sequence[type[Any]] = []
    permission_classes: Sequence[type[Any]] = []
    throttle_classes: Sequence[type[Any]] = []
    renderer_classes: Sequence[type[BaseRenderer]] = [ContractJSONRenderer]
    parser_classes: Sequence[type[BaseParser]] = [ContractJSONParser]
    content_negotiation_class = JSONOnlyNegotiation
    metadata_class = None
    versioning_class = None

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return exception_handler

    def authenticated_user(self, request: Request) -> Any:
        """The user an authentication class of this view found; ``None`` otherwise (the host's
        ``UNAUTHENTICATED_USER``, which may be ``None`` or a class of its own, is not ours to use)."""
        return request.user if request.successful_authenticator is not None else None
