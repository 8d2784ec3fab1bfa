"""The HTTP error envelope (``{"errors":[{"message","extensions":{"code"}}]}``) for every DRF error."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

_CODES = {
    status.HTTP_400_BAD_REQUEST: "INVALID_PAYLOAD",
    status.HTTP_401_UNAUTHORIZED: "INVALID_CREDENTIALS",
    status.HTTP_403_FORBIDDEN: "FORBIDDEN",
    status.HTTP_404_NOT_FOUND: "ROUTE_NOT_FOUND",
    status.HTTP_405_METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
    status.HTTP_429_TOO_MANY_REQUESTS: "REQUESTS_EXCEEDED",
}


class ApiError(exceptions.APIException):
    """An HTTP error with an explicit envelope code, e.g. ``ApiError(401, "INVALID_TOKEN", "Invalid token.")``."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        self.status_code = status_code
        self.envelope_code = code
        super().__init__(message, code)


def error_response(status_code: int, code: str, message: str) -> Response:
    return Response({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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
            name = key if key != "non_field_errors" else ""
            out += _messages(value, f"{prefix}{name}: " if name else prefix)
        return out
    if isinstance(data, list):
        return [message for item in data for message in _messages(item, prefix)]
    return [f"{prefix}{data}"]
