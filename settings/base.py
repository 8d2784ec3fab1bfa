"""Django settings of the runnable project, filled from environment variables (docs/CONFIGURATION.md)."""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url

from likha_realtime.conf import Origins, from_environ
from likha_realtime.origins import cors_origins, cors_urls_regex
from settings.env import Env, EnvError

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()


def _local_secret_key(path: Path) -> str:
    """A random key made once per checkout (``.secret_key``, git-ignored): never a key published in the repo.

    Written to a temporary file and hard-linked into place, so concurrent first starts agree on one key.
    """
    if not path.exists():
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        with os.fdopen(handle, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


SECRET_KEY = env.raw("SECRET_KEY") or _local_secret_key(BASE_DIR / ".secret_key")
DEBUG = env.bool("DEBUG", False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",  # runserver leaves /static/ to ServeStatic too (its docs)
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "channels",
    "corsheaders",  # CORS for the HTTP routes (CORS_* below)
    "realtime_auth",
    "likha_realtime",
    "erp_demo",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",  # as high as possible, before CommonMiddleware (its docs)
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS, the demo page) served under daphne with DEBUG off: ServeStatic, WhiteNoise's fork
    # whose middleware is async-native, so the ASGI request path stays async (WhiteNoise's is sync-only).
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "settings.urls"
ASGI_APPLICATION = "settings.asgi.application"
AUTH_USER_MODEL = "erp_demo.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_database_url = env.raw("DATABASE_URL")
if _database_url:
    try:
        # No persistent connections under ASGI: each HTTP request runs in a thread of its own (asgiref), and a kept
        # connection outlives its thread (docs/DEPLOYMENT.md, "PostgreSQL").
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0, conn_health_checks=True)}
    except ValueError as exc:
        raise EnvError("DATABASE_URL", _database_url, "a URL such as postgres://user@host:5432/name") from exc
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a pool health check that costs no query per checkout (likha_realtime.db.pool).
        DATABASES["default"]["ENGINE"] = "likha_realtime.db.postgresql"
        # Django's psycopg pool: at most DATABASE_POOL_MAX_SIZE connections per server process, whatever the
        # number of requests, sockets and subscriptions; a request finding them all busy waits DATABASE_POOL_TIMEOUT
        # for one, then fails with psycopg_pool.PoolTimeout. 2 processes x 20 stay well under PostgreSQL's 100.
        _pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", 20, 1)
        assert _pool_max_size is not None  # None only when the default is "unlimited"
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, _pool_max_size),
            "max_size": _pool_max_size,
            "timeout": env.duration("DATABASE_POOL_TIMEOUT", 30, minimum=0.1),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_redis_url = env.raw("REDIS_URL")
if _redis_url and not _redis_url.startswith(("redis://", "rediss://", "unix://")):
    # redis-py would refuse it only when the first socket connects (close 1011 on every socket): refuse it at start.
    raise EnvError("REDIS_URL", _redis_url, "a URL such as redis://host:6379/0 (or rediss://, unix://)")
if _redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "likha_realtime.layers.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8's default asyncio pool (100) overflows under connect storms, and its default
                # socket_timeout (5 s) equals channels-redis' BZPOPMIN timeout (5 s), so idle receives fail at
                # random with "Timeout reading from ..." (redis/redis-py#4091): read timeout above the block time.
                "hosts": [
                    {
                        "address": _redis_url,
                        "max_connections": env.int("REDIS_MAX_CONNECTIONS", 1000, 1),
                        "socket_timeout": 15,
                        "socket_connect_timeout": 5,
                    }
                ],
                "prefix": env.str("REDIS_PREFIX", "likha"),
                "capacity": env.int("REDIS_CHANNEL_CAPACITY", 1000, 1),
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The cache holds the login throttle's counts (realtime_auth.throttle, LIKHA_REALTIME["LOGIN_THROTTLE_CACHE"]): on
# Redis every server process counts together; without REDIS_URL, per process (check realtime_auth.W003 says so).
# Keys are prefixed with REDIS_PREFIX like the channel layer's, so servers sharing a Redis can keep apart.
if _redis_url:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_url,
            "KEY_PREFIX": env.str("REDIS_PREFIX", "likha"),
            # A Redis that stops answering must not hold logins up for long (the throttle then lets them through).
            "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# `manage.py collectstatic` gathers the files here (with cache-busting names: SERVESTATIC_* below); without it, the
# apps' static folders are served directly (STATIC_USE_FINDERS, on by default: nothing to run before `make run`).
STATIC_ROOT = env.str("STATIC_ROOT", str(BASE_DIR / "var" / "static"))
SERVESTATIC_USE_FINDERS = env.bool("STATIC_USE_FINDERS", True)

ACCESS_TOKEN_TTL = env.duration("ACCESS_TOKEN_TTL", 15 * 60, minimum=1)
REFRESH_TOKEN_TTL = env.duration("REFRESH_TOKEN_TTL", 7 * 86400, minimum=1)

# No REST_FRAMEWORK and no request-log middleware: the realtime views set their own DRF policies
# (realtime_auth.http.ContractAPIView) and the ASGI application logs requests (likha_realtime.logs.requests).

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=ACCESS_TOKEN_TTL),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=REFRESH_TOKEN_TTL),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
}


# Only the keys whose environment variables are set (likha_realtime.conf.ENVIRONMENT, realtime_auth.conf.ENVIRONMENT);
# every default lives in the apps' conf.DEFAULTS.
LIKHA_REALTIME = from_environ()

# CORS for this project's HTTP routes only (/auth/*, /items/*, /server/info, /graphql), by django-cors-headers
# (docs/CONFIGURATION.md). Allowed: CORS_ALLOWED_ORIGINS, else the sockets' WEBSOCKETS_ALLOWED_ORIGINS, else the
# http(s) origins whose host is in ALLOWED_HOSTS (any port). No credentials: tokens travel in Authorization.
_cors = cors_origins(
    env.read("CORS_ALLOWED_ORIGINS", Origins(), None),
    LIKHA_REALTIME.get("WEBSOCKETS_ALLOWED_ORIGINS"),
    ALLOWED_HOSTS,
    debug=DEBUG,
)
CORS_ALLOW_ALL_ORIGINS = _cors.allow_all
CORS_ALLOWED_ORIGINS = _cors.origins
CORS_ALLOWED_ORIGIN_REGEXES = _cors.regexes
CORS_URLS_REGEX = cors_urls_regex(LIKHA_REALTIME.get("GRAPHQL_PATH", "/graphql"))
CORS_ALLOW_HEADERS = ("authorization", "content-type")
CORS_EXPOSE_HEADERS = ("retry-after",)  # a throttled login's 429 (realtime_auth.throttle): pages may read the wait
CORS_ALLOW_CREDENTIALS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
    },
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "psycopg.pool": {"level": "WARNING"},  # logs two INFO lines for every connection it lends
    },
}
