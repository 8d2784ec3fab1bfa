"""``BearerSession``: DRF authentication by ``Authorization: Bearer <access token>``, checked as sockets do."""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from realtime_auth import tokens
from realtime_auth.errors import InvalidToken
from realtime_auth.http import ApiError


class BearerSession(BaseAuthentication):
    """``Authorization: Bearer <access token>`` checked as the sockets check it: signature, expiry, an active user
    and a session not ended by logout or revocation (simplejwt's own class accepts a logged-out session's tokens).
    No Bearer header: the public role."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        invalid = ApiError(status.HTTP_401_UNAUTHORIZED, "INVALID_TOKEN", "Invalid token.")
        if len(parts) != 2:
            raise invalid
        try:
            return tokens.verify_access(parts[1].decode("ascii")).user, None
        except (UnicodeDecodeError, InvalidToken) as exc:
            raise invalid from exc

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
