"""Token issuance, rotation, blacklisting and verification, all through simplejwt (synchronous: they use the DB)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

from django.contrib.auth import authenticate
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import router, transaction
from django.db.models import Exists
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime_auth import revocation, usernames
from realtime_auth.errors import InvalidCredentials, InvalidToken
from realtime_auth.models import RevokedSession

SESSION_CLAIM = "sid"


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
    access: str = field(repr=False)
    refresh: str = field(repr=False)
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


REVOKED_FLAG = "realtime_session_revoked"  # the annotation that carries a session's revocation with its user


class _WithRevocation:
    """Stands for the user model in ``JWTAuthentication.get_user``: its ``objects.get(...)`` also says whether a
    session is revoked (an ``EXISTS`` in the same query), and its ``DoesNotExist`` is the model's."""

    def __init__(self, user_model: Any, session_id: str) -> None:
        revoked = RevokedSession.objects.filter(session_id=session_id)
        self.objects = user_model.objects.annotate(**{REVOKED_FLAG: Exists(revoked)})
        self.DoesNotExist = user_model.DoesNotExist


def session_user(token: Any, session_id: str) -> AbstractBaseUser:
    """The token's user as simplejwt's ``JWTAuthentication.get_user`` finds and checks it (the host's user model,
    ``USER_ID_FIELD``, ``CHECK_USER_IS_ACTIVE``, ``CHECK_REVOKE_TOKEN``), provided ``session_id`` is not revoked;
    ``InvalidToken`` otherwise. One query where the user model and the revoked sessions share a database (an
    authenticated connect's only read), two where the host's database router keeps users elsewhere."""
    authentication = JWTAuthentication()
    user_model = authentication.user_model
    if router.db_for_read(user_model) != router.db_for_read(RevokedSession):
        if is_revoked(session_id):
            raise InvalidToken()
        return _user_for(token)
    authentication.user_model = _WithRevocation(user_model, session_id)  # type: ignore[assignment]  # duck-typed
    try:
        user = authentication.get_user(token)
    except AuthenticationFailed as exc:  # missing claim, unknown or inactive user, password changed
        raise InvalidToken() from exc
    if user.__dict__.pop(REVOKED_FLAG):  # the user object is left as get_user gives it
        raise InvalidToken()
    return user


def issue_pair(user: AbstractBaseUser) -> TokenPair:
    """A new login session for ``user``: a fresh refresh token (recorded as outstanding) and its access token."""
    return _pair(SessionRefreshToken.for_user(user))


@sensitive_variables("password")
def login(
    identifier: Any, password: Any, *, field: str = usernames.EMAIL, request: HttpRequest | None = None
) -> tuple[AbstractBaseUser, TokenPair]:
    """Password login through ``django.contrib.auth.authenticate()``, so the host's ``AUTHENTICATION_BACKENDS``
    apply; ``InvalidCredentials`` for anything but an active user with that password.

    ``identifier`` was given under the wire key ``field`` (``email``, or the user model's ``USERNAME_FIELD`` name:
    ``usernames.login_fields()``) and becomes the ``username`` of ``authenticate()`` (``usernames.username_for``).
    ``request`` is the HTTP request of ``POST /auth/login``, and ``None`` for a socket's ``auth`` message or
    ``connection_init`` (there is no HTTP request; backends must accept ``request=None``, as Django's do).
    """
    if field not in usernames.login_fields() or not usable_text(identifier) or not usable_text(password):
        raise InvalidCredentials()
    username = usernames.username_for(field, identifier)
    user = authenticate(request, username=username, password=password)
    if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
        raise InvalidCredentials()
    return user, issue_pair(user)


@sensitive_variables("raw_refresh")
def rotate(raw_refresh: Any) -> tuple[AbstractBaseUser, TokenPair]:
    """Exchange a refresh token for a new pair; the old one is blacklisted and can never be used again.

    As simplejwt's ``TokenRefreshSerializer`` does, plus what it lacks: the token's outstanding row is locked so
    a concurrent logout or refresh of the same token waits; a token already spent (reuse: a copy was stolen or
    replayed) ends its whole session; a revoked session cannot be refreshed.
    """
    with transaction.atomic():
        refresh, spent = _refresh_token(raw_refresh, lock=True)
        if not spent:
            user = _user_for(refresh)
            # simplejwt annotates blacklist() as returning the row but returns get_or_create's (object, created)
            _, created = cast("tuple[BlacklistedToken, bool]", refresh.blacklist())
            if created:
                refresh.set_jti()
                refresh.set_exp()
                refresh.set_iat()
                refresh.outstand()
                return user, _pair(refresh)
    _end_session_of(refresh)  # reuse of a spent refresh token: the session is compromised
    raise InvalidToken()


@sensitive_variables("raw_refresh")
@transaction.atomic
def revoke(raw_refresh: Any) -> tuple[Any, str | None]:
    """Logout: blacklist a refresh token and refuse its session's tokens; returns (user id, session id).

    A token already spent by a rotation still names its session, so its owner can end a session that a thief
    keeps refreshing.
    """
    refresh, _ = _refresh_token(raw_refresh, lock=True)
    refresh.blacklist()
    session_id = refresh.get(SESSION_CLAIM)
    _record_revoked([session_id] if session_id else [])
    return refresh.get(api_settings.USER_ID_CLAIM), session_id


def _end_session_of(refresh: RefreshToken) -> None:
    with transaction.atomic():
        session_id = refresh.get(SESSION_CLAIM)
        _record_revoked([session_id] if session_id else [])
        revocation.end_session(refresh.get(api_settings.USER_ID_CLAIM), session_id)


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


@sensitive_variables("raw_access")
def _access_token(raw_access: Any) -> AccessToken:
    """The access token whose signature, type and expiry hold (no database); ``InvalidToken`` otherwise."""
    if not _jwt_text(raw_access):
        raise InvalidToken()
    try:
        return AccessToken(raw_access)
    except TokenError as exc:
        raise InvalidToken() from exc


@sensitive_variables("raw_access")
def verify_access(raw_access: Any) -> VerifiedAccess:
    """Validate an access token (signature, type, exp, a session that is not revoked) and load its active user."""
    access = _access_token(raw_access)
    session_id = access.get(SESSION_CLAIM)
    # Tokens without a session id were not issued here (a stock simplejwt view): they could not be revoked.
    if not isinstance(session_id, str):
        raise InvalidToken()
    return VerifiedAccess(session_user(access, session_id), int(access["exp"]), session_id)


@sensitive_variables("raw_access")
def access_claims(raw_access: Any) -> tuple[Any, str]:
    """The user id and session id claims of an access token whose signature, type and expiry hold, without the
    database (``verify_access`` still checks the session and loads the user); ``InvalidToken`` otherwise."""
    access = _access_token(raw_access)
    user_id, session_id = access.get(api_settings.USER_ID_CLAIM), access.get(SESSION_CLAIM)
    if user_id is None or not isinstance(session_id, str):
        raise InvalidToken()
    return user_id, session_id


def usable_text(value: Any) -> TypeGuard[str]:
    """A non-empty string that the database and UTF-8 can carry (no NUL, no lone surrogate), at most 4 KiB."""
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 4096:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _jwt_text(raw: Any) -> bool:
    """JWTs are short ASCII (base64url and dots): anything else is refused before any decoding."""
    return isinstance(raw, str) and 0 < len(raw) <= 4096 and raw.isascii() and "\x00" not in raw


def is_revoked(session_id: str) -> bool:
    return RevokedSession.objects.filter(session_id=session_id).exists()


def _refresh_token(raw: Any, lock: bool = False) -> tuple[RefreshToken, bool]:
    """The verified refresh token and whether it is already spent (blacklisted); ``InvalidToken`` otherwise."""
    if not _jwt_text(raw):
        raise InvalidToken()
    try:
        # Signature, expiry and type, without simplejwt's blacklist check: reuse is detected below.
        refresh = SessionRefreshToken(raw, verify=False)
        refresh.get_token_backend().decode(raw, verify=True)
        refresh.verify_token_type()
    except (TokenError, TokenBackendError) as exc:
        raise InvalidToken() from exc
    payload = refresh.payload
    session_id = payload.get(SESSION_CLAIM)
    if not isinstance(session_id, str) or is_revoked(session_id):
        raise InvalidToken()
    outstanding = OutstandingToken.objects.filter(jti=payload.get(api_settings.JTI_CLAIM))
    if lock:
        outstanding = outstanding.select_for_update()
    row = outstanding.first()
    spent = row is not None and BlacklistedToken.objects.filter(token=row).exists()
    return refresh, spent
