"""Which user a password login names (PROTOCOL §3, §9): the wire's ``email`` or the user model's ``USERNAME_FIELD``,
and the ``username`` that ``django.contrib.auth.authenticate()`` then hands to the host's authentication backends.

realtime_auth defines no user model: everything here reads ``get_user_model()`` when called, so it works with
Django's ``auth.User``, a custom ``AbstractUser`` or an ``AbstractBaseUser`` (``USERNAME_FIELD = "email"``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist

EMAIL = "email"

# Keys the protocol already gives a meaning in an ``auth`` frame or a ``connection_init`` payload: a user model
# whose ``USERNAME_FIELD`` has one of these names logs in with ``email`` only (which then authenticates the value
# given as the username when the model has no email field).
RESERVED = frozenset({"type", "uid", "access_token", "refresh_token", "password"})


def login_fields() -> tuple[str, ...]:
    """The wire keys that can name the user of a password login: ``email``, and the ``USERNAME_FIELD`` name when
    that is another key (``username`` for Django's ``auth.User``) that the protocol does not use otherwise."""
    name = get_user_model().USERNAME_FIELD
    return (EMAIL,) if name == EMAIL or name in RESERVED else (EMAIL, name)


def username_for(field: str, value: str) -> Any:
    """The username to ``authenticate()`` with, for ``value`` given under the wire key ``field``.

    - ``field`` is the ``USERNAME_FIELD`` name, or it is ``email`` and the email field is the username field:
      ``value`` itself.
    - ``email`` otherwise: the ``get_username()`` of the one user whose email field (``EMAIL_FIELD``) equals
      ``value`` ignoring case. When no user or several users have that email (or the model has no email field):
      ``value`` itself, so that a backend which takes an email as a username (LDAP) still can, and the password is
      checked either way (no timing difference tells whether the email is known); a wrong guess fails like a wrong
      password. An email shared by several users therefore logs none of them in by email: they use their username.
    """
    model = get_user_model()
    email_field = model.get_email_field_name()
    if field == model.USERNAME_FIELD or email_field == model.USERNAME_FIELD:
        return value
    if field != EMAIL:
        raise ValueError(f"{field!r} is not a login field")
    try:
        model._meta.get_field(email_field)
    except FieldDoesNotExist:
        return value
    matches = list(model._default_manager.filter(**{f"{email_field}__iexact": value})[:2])
    return matches[0].get_username() if len(matches) == 1 else value
