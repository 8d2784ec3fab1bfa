"""HTTP ``/auth/login``, ``/auth/refresh``, ``/auth/logout`` (PROTOCOL §9), all tokens through simplejwt."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime_auth import revocation, tokens
from realtime_auth.errors import InvalidCredentials, InvalidToken
from realtime_auth.http import ApiError


class LoginBody(serializers.Serializer):
    email = serializers.CharField(max_length=254, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class RefreshBody(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class AuthView(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    body: type[serializers.Serializer]

    def validated(self, request: Request) -> dict[str, Any]:
        if not isinstance(request.data, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        body = self.body(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = body.validated_data  # a plain Serializer validates to a dict
        return data


def token_response(pair: tokens.TokenPair) -> Response:
    return Response(
        {"data": {"access_token": pair.access, "refresh_token": pair.refresh, "expires": pair.access_lifetime_ms}}
    )


def refused(error: InvalidCredentials | InvalidToken) -> ApiError:
    return ApiError(status.HTTP_401_UNAUTHORIZED, error.http_code, error.http_message)


class LoginView(AuthView):
    body = LoginBody

    def post(self, request: Request) -> Response:
        data = self.validated(request)
        try:
            _, pair = tokens.login(data["email"], data["password"])
        except InvalidCredentials as exc:
            raise refused(exc) from exc
        return token_response(pair)


class RefreshView(AuthView):
    body = RefreshBody

    def post(self, request: Request) -> Response:
        data = self.validated(request)
        try:
            _, pair = tokens.rotate(data["refresh_token"])
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
