"""Token issuance, rotation, blacklisting and verification, all through simplejwt (synchronous: they use the DB)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime_auth.models import RevokedSession
from realtime_auth.protocol import AuthError

SESSION_CLAIM = "sid"


class InvalidCredentials(AuthError):
    """Email/password refused (unknown user, wrong password, inactive user)."""

    http_code = "INVALID_CREDENTIALS"
    http_message = "Invalid user credentials."


class InvalidToken(AuthError):
    """A token that is malformed, badly signed, expired, blacklisted, reused, or whose user is gone/inactive."""

    http_code = "INVALID_TOKEN"
    http_message = "Invalid token."


class SessionRefreshToken(RefreshToken):
    """A refresh token that carries a session id (``sid``), kept through rotations and copied to access tokens.

    The sid names one login session, so logout can end exactly that session's sockets.
    """

    def __init__(self, token: Any = None, verify: bool = True) -> None:
        super().__init__(token, verify)
        if token is None:
            self.payload[SESSION_CLAIM] = uuid.uuid4().hex


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    access_expires_at: int  # epoch seconds (the access token's exp)
    session_id: str | None

    @property
    def access_lifetime_ms(self) -> int:
        return int(api_settings.ACCESS_TOKEN_LIFETIME.total_seconds() * 1000)


@dataclass(frozen=True)
class VerifiedAccess:
    user: AbstractBaseUser
    expires_at: int
    session_id: str | None


def _pair(refresh: RefreshToken) -> TokenPair:
    access = refresh.access_token
    return TokenPair(str(access), str(refresh), int(access["exp"]), refresh.get(SESSION_CLAIM))


def _user_for(token: Any) -> AbstractBaseUser:
    try:
        return JWTAuthentication().get_user(token)
    except AuthenticationFailed as exc:  # missing claim, unknown or inactive user
        raise InvalidToken() from exc


def issue_pair(user: AbstractBaseUser) -> TokenPair:
    """A new login session for ``user``: a fresh refresh token (recorded as outstanding) and its access token."""
    return _pair(SessionRefreshToken.for_user(user))


def login(email: Any, password: Any) -> tuple[AbstractBaseUser, TokenPair]:
    """Email/password login; ``InvalidCredentials`` for anything but an active user with that password."""
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise InvalidCredentials()
    user = authenticate(email=email, password=password)
    if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
        raise InvalidCredentials()
    return user, issue_pair(user)


@transaction.atomic
def rotate(raw_refresh: Any) -> tuple[AbstractBaseUser, TokenPair]:
    """Exchange a refresh token for a new pair; the old one is blacklisted and can never be used again.

    As simplejwt's ``TokenRefreshSerializer`` does, plus one check it lacks: if a concurrent request blacklisted
    the same token first (``blacklist()`` found it already there), this one is refused, so a refresh token is
    spent exactly once.
    """
    refresh = _refresh_token(raw_refresh)
    user = _user_for(refresh)
    _, created = refresh.blacklist()  # simplejwt returns get_or_create's (object, created)
    if not created:
        raise InvalidToken()
    refresh.set_jti()
    refresh.set_exp()
    refresh.set_iat()
    refresh.outstand()
    return user, _pair(refresh)


@transaction.atomic
def revoke(raw_refresh: Any) -> tuple[Any, str | None]:
    """Logout: blacklist a refresh token and refuse its session's access tokens; returns (user id, session id)."""
    refresh = _refresh_token(raw_refresh)
    refresh.blacklist()
    session_id = refresh.get(SESSION_CLAIM)
    _record_revoked([session_id] if session_id else [])
    return refresh.get(api_settings.USER_ID_CLAIM), session_id


@transaction.atomic
def revoke_user(user_id: Any) -> None:
    """Blacklist every live refresh token of a user and refuse the access tokens of all its sessions."""
    live = list(OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True))
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in live], ignore_conflicts=True)
    session_ids = []
    for outstanding in live:
        try:
            session_ids.append(SessionRefreshToken(outstanding.token, verify=False).get(SESSION_CLAIM))
        except TokenError:
            continue
    _record_revoked([sid for sid in session_ids if sid])


def _record_revoked(session_ids: list[str]) -> None:
    # Rows older than the access-token lifetime can refuse nothing any more.
    RevokedSession.objects.filter(revoked_at__lt=timezone.now() - api_settings.ACCESS_TOKEN_LIFETIME).delete()
    RevokedSession.objects.bulk_create([RevokedSession(session_id=sid) for sid in session_ids], ignore_conflicts=True)


def verify_access(raw_access: Any) -> VerifiedAccess:
    """Validate an access token (signature, type, exp) and load its active user."""
    if not isinstance(raw_access, str) or not raw_access:
        raise InvalidToken()
    try:
        access = AccessToken(raw_access)
    except TokenError as exc:
        raise InvalidToken() from exc
    session_id = access.get(SESSION_CLAIM)
    if session_id and RevokedSession.objects.filter(session_id=session_id).exists():
        raise InvalidToken()
    return VerifiedAccess(_user_for(access), int(access["exp"]), session_id)


def _refresh_token(raw: Any) -> RefreshToken:
    if not isinstance(raw, str) or not raw:
        raise InvalidToken()
    try:
        return SessionRefreshToken(raw)  # verifies signature, type, exp and the blacklist
    except TokenError as exc:
        raise InvalidToken() from exc
