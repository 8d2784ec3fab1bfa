"""The three credential kinds of an ``auth`` message or ``connection_init`` payload, and logging in with them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from channels.db import database_sync_to_async
from django.views.decorators.debug import sensitive_variables

from realtime_auth import revocation, throttle, tokens, usernames
from realtime_auth.errors import AuthError
from realtime_auth.session import Identity


class Kind(StrEnum):
    ACCESS_TOKEN = "access_token"
    PASSWORD = "password"
    REFRESH_TOKEN = "refresh_token"


@dataclass(frozen=True)
class Credentials:
    kind: Kind
    secret: str  # the token, or the password
    identifier: str = ""  # password logins: who logs in, as given under ``field``
    field: str = ""  # password logins: ``email`` or the user model's USERNAME_FIELD name (usernames.login_fields())
    address: str = throttle.UNKNOWN_ADDRESS  # the client's address (``throttle.scope_address``), for the throttle

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return (
            f"Credentials(kind={self.kind!s}, field={self.field!r}, identifier={self.identifier!r}, "
            f"address={self.address!r})"
        )


@dataclass(frozen=True)
class AuthResult:
    identity: Identity
    refresh_token: str | None = field(default=None, repr=False)  # a new refresh token (password and refresh logins)
    # The revocation groups the socket listened to before the identity was read from the database: when they are
    # the identity's own, that read is the re-read after listening (``RealtimeAuthMixin._adopt``), not repeated.
    listened: frozenset[str] = frozenset()


def parse_credentials(payload: Mapping[str, Any], address: str = throttle.UNKNOWN_ADDRESS) -> Credentials:
    """Exactly one credential set, with string values, sent from ``address``; other keys are ignored. ``AuthError``
    otherwise.

    A password login names its user with exactly one of ``usernames.login_fields()``: ``email``, or the user
    model's ``USERNAME_FIELD`` name (``username``); both, or neither, is refused.
    """
    named_by = [name for name in usernames.login_fields() if name in payload]
    has_access = "access_token" in payload
    has_password = bool(named_by) or "password" in payload
    has_refresh = "refresh_token" in payload
    if has_access + has_password + has_refresh != 1:
        raise AuthError()
    if has_access:
        return Credentials(Kind.ACCESS_TOKEN, _text(payload, "access_token"), address=address)
    if has_refresh:
        return Credentials(Kind.REFRESH_TOKEN, _text(payload, "refresh_token"), address=address)
    if len(named_by) != 1:
        raise AuthError()
    field = named_by[0]
    return Credentials(Kind.PASSWORD, _text(payload, "password"), _text(payload, field), field, address)


def _text(payload: Mapping[str, Any], key: str) -> str:
    """A non-empty string that the database and UTF-8 can carry (no NUL, no lone surrogate)."""
    value = payload.get(key)
    if not tokens.usable_text(value):
        raise AuthError()
    return value


def verify_access_token(raw: str) -> Identity:
    verified = tokens.verify_access(raw)
    return Identity(verified.user, verified.expires_at, verified.session_id)


@sensitive_variables("credentials")
def authenticate_sync(credentials: Credentials) -> AuthResult:
    """Log in with any credential kind; raises an ``AuthError`` subclass when refused.

    Password and refresh-token logins go through the login throttle (``LoginThrottled`` before any check when
    the client's address or the account is over its limit); an access token is a signature check and is not
    counted here (the sockets' message limits cover it).
    """
    if credentials.kind is Kind.ACCESS_TOKEN:
        return AuthResult(verify_access_token(credentials.secret))
    if credentials.kind is Kind.PASSWORD:
        account = throttle.account_key(credentials.field, credentials.identifier)
        with throttle.login_attempt(credentials.address, account):
            # No HTTP request on a socket: the host's backends get ``request=None`` (docs/PROTOCOL.md §3).
            user, pair = tokens.login(credentials.identifier, credentials.secret, field=credentials.field)
    else:
        with throttle.login_attempt(credentials.address):
            user, pair = tokens.rotate(credentials.secret)
    return AuthResult(Identity(user, pair.access_expires_at, pair.session_id), pair.refresh)


def access_groups(credentials: Credentials) -> frozenset[str]:
    """The revocation groups of an access token's user and session, from its verified claims (no database):
    ``InvalidToken`` for a token whose signature, type or expiry fails."""
    user_id, session_id = tokens.access_claims(credentials.secret)
    return frozenset({revocation.user_group(user_id), revocation.session_group(session_id)})


def reload_identity_sync(identity: Identity) -> Identity | None:
    """The identity with a freshly loaded user (current rights), or ``None`` if it no longer holds:
    the session was revoked or the user is gone or inactive."""
    if identity.session_id and tokens.is_revoked(identity.session_id):
        return None
    user = type(identity.user)._default_manager.filter(pk=identity.user.pk).first()
    if user is None or not user.is_active:
        return None
    return Identity(user, identity.expires_at, identity.session_id)


# channels ships no types: these state what database_sync_to_async makes of each function.
authenticate: Callable[[Credentials], Awaitable[AuthResult]] = database_sync_to_async(authenticate_sync)
reload_identity: Callable[[Identity], Awaitable[Identity | None]] = database_sync_to_async(reload_identity_sync)
verify_url_token: Callable[[str], Awaitable[Identity]] = database_sync_to_async(verify_access_token)
