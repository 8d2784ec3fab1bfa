"""HTTP ``/auth/login``, ``/auth/refresh``, ``/auth/logout`` (PROTOCOL §9), all tokens through simplejwt."""

from __future__ import annotations

from typing import Any, NoReturn

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from realtime_auth import revocation, throttle, tokens, usernames
from realtime_auth.errors import InvalidCredentials, InvalidToken, LoginThrottled
from realtime_auth.http import ApiError, ContractAPIView, TooManyLogins


class LoginBody(serializers.Serializer):
    """``password`` and exactly one of ``usernames.login_fields()``: ``email``, or the user model's
    ``USERNAME_FIELD`` name (``username``). Neither is ``email: This field is required.``; both is a non-field
    error naming them."""

    password = serializers.CharField(max_length=4096, trim_whitespace=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        names = {
            name: serializers.CharField(
                max_length=254 if name == usernames.EMAIL else 4096, trim_whitespace=False, required=False
            )
            for name in usernames.login_fields()
        }
        return {**names, **super().get_fields()}  # the login field first: errors name it first

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        names = usernames.login_fields()
        given = [name for name in names if name in data]
        errors: dict[str, Any] = {}  # "non_field_errors": the envelope's messages then name no field (http.py)
        if not given:
            errors[usernames.EMAIL] = [self.fields[usernames.EMAIL].error_messages["required"]]
        try:
            value: dict[str, Any] = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors.update(exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail})
        if len(given) > 1:
            errors["non_field_errors"] = [f"Give one of {' or '.join(names)}, not both."]
        if errors:
            raise serializers.ValidationError(errors)
        return value


class RefreshBody(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class AuthView(ContractAPIView):
    """No authentication: the body carries the credentials. ``ContractAPIView``: no host DRF default applies."""

    body: type[serializers.Serializer]

    def validated(self, request: Request) -> dict[str, Any]:
        if not isinstance(request.data, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = body.validated_data  # a plain Serializer validates to a dict
        return data

    def throttled(self, request: Request, wait: float | None) -> NoReturn:
        """429 ``REQUESTS_EXCEEDED`` with ``Retry-After`` (PROTOCOL §9), worded as on the sockets."""
        raise TooManyLogins(LoginThrottled(wait or 0))


def token_response(pair: tokens.TokenPair) -> Response:
    return Response(
        {"data": {"access_token": pair.access, "refresh_token": pair.refresh, "expires": pair.access_lifetime_ms}}
    )


def refused(error: InvalidCredentials | InvalidToken) -> ApiError:
    return ApiError(status.HTTP_401_UNAUTHORIZED, error.http_code, error.http_message)


class LoginView(AuthView):
    """Every request counts per client address (``LoginAttempts``: DRF's ``check_throttles``, before the body is
    read); failures count per address and per account (``throttle.login_attempt``)."""

    body = LoginBody
    throttle_classes = [throttle.LoginAttempts]

    def post(self, request: Request) -> Response:
        data = self.validated(request)
        field = next(name for name in usernames.login_fields() if name in data)
        account = throttle.account_key(field, data[field])
        try:
            with throttle.login_attempt(throttle.request_address(request), account, counted=True):
                # The HTTP request reaches the host's backends (Django's, not DRF's wrapper).
                _, pair = tokens.login(data[field], data["password"], field=field, request=request._request)
        except LoginThrottled as exc:
            self.throttled(request, exc.wait)
        except InvalidCredentials as exc:
            raise refused(exc) from exc
        return token_response(pair)


class RefreshView(AuthView):
    """Counted per client address like ``LoginView`` (a refresh token names no account before it is verified)."""

    body = RefreshBody
    throttle_classes = [throttle.LoginAttempts]

    def post(self, request: Request) -> Response:
        data = self.validated(request)
        try:
            with throttle.login_attempt(throttle.request_address(request), counted=True):
                _, pair = tokens.rotate(data["refresh_token"])
        except LoginThrottled as exc:
            self.throttled(request, exc.wait)
        except InvalidToken as exc:
            raise refused(exc) from exc
        return token_response(pair)


class LogoutView(AuthView):
    body = RefreshBody

    def post(self, request: Request) -> Response:
        data = self.validated(request)
        try:
            user_id, session_id = tokens.revoke(data["refresh_token"])
        except InvalidToken as exc:
            raise refused(exc) from exc
        revocation.end_session(user_id, session_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
