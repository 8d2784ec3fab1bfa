"""System checks of the host's deployment for realtime_auth: the public role's group, the JWT signing key and the
login throttle's cache (docs/CONFIGURATION.md, "System checks"). The settings' own values are checked in ``apps.py``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from realtime_auth.conf import SETTING_NAME, auth_settings

# RFC 7518 3.2: an HMAC key at least as long as the hash output.
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
MIN_DISTINCT_CHARACTERS = 5  # as Django's security.W009
DJANGO_DEVELOPMENT_KEY_PREFIX = "django-insecure-"  # what startproject writes into settings.py
KEY_HINT = (
    "Set SIMPLE_JWT['SIGNING_KEY'] (env JWT_SIGNING_KEY in this project) or SECRET_KEY to a long random secret kept "
    "out of the source, e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(64))'."
)


def check_public_group(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001 (``database``): the group of ``PUBLIC_ROLE`` does not exist, so the public role has no rights at all.

    Runs with ``manage.py check --database default`` and at server start (``likha_realtime.server``). A database
    that cannot answer (not migrated yet) is left to ``migrate`` to report.
    """
    from django.contrib.auth.models import Group

    if not databases:
        return []
    name = auth_settings.PUBLIC_ROLE
    try:
        exists = Group.objects.filter(name=name).exists()
    except DatabaseError:
        return []
    if exists:
        return []
    return [
        checks.Warning(
            f"The public role's group {name!r} ({SETTING_NAME}['PUBLIC_ROLE']) does not exist: sockets in the public "
            "role and requests without a token can read nothing.",
            hint=f"Create the group {name!r} (Django admin, Groups) with the view permissions the public may have, or "
            f"set {SETTING_NAME}['PUBLIC_ROLE'] to an existing group. If the public should read nothing, add "
            "'realtime_auth.W001' to SILENCED_SYSTEM_CHECKS.",
            id="realtime_auth.W001",
        )
    ]


def signing_key() -> tuple[str, str, Any]:
    """simplejwt's algorithm, the setting its key comes from, and the key."""
    from rest_framework_simplejwt.settings import api_settings

    key = api_settings.SIGNING_KEY
    source = "SECRET_KEY" if key == getattr(settings, "SECRET_KEY", None) else "SIMPLE_JWT['SIGNING_KEY']"
    return str(api_settings.ALGORITHM), source, key


def check_signing_key(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E003 (deploy): an HMAC signing key short or simple enough to guess; W002 (deploy): Django's development key.

    Whoever has the key signs access tokens for any user, superusers included. Asymmetric algorithms (RS*, ES*,
    EdDSA) sign with a private key of their own and are not checked here. The key itself is never shown.
    """
    algorithm, source, key = signing_key()
    if algorithm not in HMAC_KEY_BYTES:
        return []
    text = key if isinstance(key, str) else ""
    size = len(key) if isinstance(key, bytes) else len(text.encode("utf-8"))
    needed = HMAC_KEY_BYTES[algorithm]
    distinct = len(set(key)) if isinstance(key, bytes | str) else 0
    if size < needed or distinct < MIN_DISTINCT_CHARACTERS:
        return [
            checks.Error(
                f"The JWT signing key ({source}) is weak: {size} bytes with {distinct} distinct characters; "
                f"{algorithm} needs at least {needed} random bytes. Whoever guesses it can sign access tokens for "
                "any user, superusers included.",
                hint=KEY_HINT,
                id="realtime_auth.E003",
            )
        ]
    if text.startswith(DJANGO_DEVELOPMENT_KEY_PREFIX):
        return [
            checks.Warning(
                f"The JWT signing key ({source}) is a development key ('{DJANGO_DEVELOPMENT_KEY_PREFIX}…', as "
                "startproject writes it into settings.py): whoever has the source can sign access tokens for any "
                "user.",
                hint=KEY_HINT,
                id="realtime_auth.W002",
            )
        ]
    return []


PROCESS_LOCAL_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)
NO_CACHE = "django.core.cache.backends.dummy.DummyCache"


def check_throttle_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E004: ``LOGIN_THROTTLE_CACHE`` names no cache of ``CACHES`` (every credential login would fail)."""
    alias = auth_settings.LOGIN_THROTTLE_CACHE
    if not isinstance(alias, str) or alias in settings.CACHES:
        return []  # a value of the wrong kind is E001's
    return [
        checks.Error(
            f"{SETTING_NAME}['LOGIN_THROTTLE_CACHE'] = {alias!r} names no cache in CACHES: credential logins "
            "cannot be counted, so they fail.",
            hint=f"Set it to one of {sorted(settings.CACHES)} or add a cache {alias!r} to CACHES.",
            id="realtime_auth.E004",
        )
    ]


def check_throttle_cache_shared(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W003 (deploy): the login throttle counts in a cache of one process (LocMem): each server process keeps its
    own counts, so the limits multiply by the number of processes. W004 (deploy): a dummy cache counts nothing."""
    alias = auth_settings.LOGIN_THROTTLE_CACHE
    backend = settings.CACHES.get(alias, {}).get("BACKEND") if isinstance(alias, str) else None
    shared = (
        "use a cache every process shares: Redis (django.core.cache.backends.redis.RedisCache; this project's "
        f"settings do so when REDIS_URL is set) or Memcached, named by {SETTING_NAME}['LOGIN_THROTTLE_CACHE'] "
        "(docs/CONFIGURATION.md, 'Login throttling')."
    )
    if backend in PROCESS_LOCAL_CACHES:
        return [
            checks.Warning(
                f"The login throttle's cache {alias!r} is local to each server process ({backend}): a client "
                "spreading its login attempts over n processes gets n times the limits.",
                hint=f"Fine for one server process. With several processes or machines {shared}",
                id="realtime_auth.W003",
            )
        ]
    if backend == NO_CACHE:
        return [
            checks.Warning(
                f"The login throttle's cache {alias!r} is a dummy cache: no login is ever throttled.",
                hint=f"To throttle logins, {shared} To throttle none, set the LOGIN_*_PER_* limits to None instead.",
                id="realtime_auth.W004",
            )
        ]
    return []


def register() -> None:
    """Called from ``RealtimeAuthConfig.ready()``; deploy checks run with ``check --deploy`` and at the start of
    ``likha_realtime.server``."""
    checks.register(check_public_group, checks.Tags.database)
    checks.register(check_signing_key, checks.Tags.security, deploy=True)
    checks.register(check_throttle_cache, checks.Tags.caches)
    checks.register(check_throttle_cache_shared, checks.Tags.caches, deploy=True)
