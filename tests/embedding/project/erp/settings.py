"""Settings of an ERP that embeds Likha ERP Realtime (docs/EMBEDDING.md shows this file piece by piece)."""

import os
from datetime import timedelta
from pathlib import Path

from likha_realtime.origins import cors_urls_regex

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ["ERP_SECRET_KEY"]  # long and random: it also signs the realtime access tokens
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Likha ERP Realtime and what it builds on
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "channels",
    "realtime_auth",
    "likha_realtime",
    # the ERP's own apps
    "inventory",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",  # CORS for the realtime routes: as high as possible
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "erp.urls"

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

DATABASES = {
    "default": {
        # Django's PostgreSQL backend whose pool checks connections without a query per checkout (DEPLOYMENT.md,
        # "PostgreSQL"); "django.db.backends.postgresql" works too.
        "ENGINE": "likha_realtime.db.postgresql",
        "NAME": os.environ.get("ERP_DB_NAME", "erp"),
        "USER": os.environ.get("ERP_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("ERP_DB_PASSWORD", ""),
        "HOST": os.environ.get("ERP_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("ERP_DB_PORT", "5432"),
        # Under ASGI no persistent connections; a pool bounds each server process (processes x max_size must stay
        # under PostgreSQL's max_connections).
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,  # a connection PostgreSQL closed is replaced before it is lent
        "OPTIONS": {"pool": {"min_size": 2, "max_size": 20, "timeout": 30}},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

# Events, logouts and rights changes cross server processes through Redis (channels-redis).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "likha_realtime.layers.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                    "max_connections": 1000,  # redis-py's default pool (100) overflows when many sockets connect
                    "socket_timeout": 15,  # above channels-redis' 5 s blocking read
                }
            ],
            "prefix": os.environ.get("REDIS_PREFIX", "erp-realtime"),
        },
    }
}

# Login throttling counts attempts in this cache: on Redis, every server process counts together.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "KEY_PREFIX": os.environ.get("REDIS_PREFIX", "erp-realtime"),
    }
}

# Token lifetimes (simplejwt); refreshing always rotates the refresh token and blacklists the old one.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
}

# Pages of these origins (the ERP's front end) may open the sockets and call the realtime HTTP routes.
FRONTEND_ORIGINS = ["https://app.erp.example"]

LIKHA_REALTIME = {
    "WEBSOCKETS_ALLOWED_ORIGINS": FRONTEND_ORIGINS,
    "COLLECTIONS": {"warehouses": "inventory.Warehouse"},
}

# CORS (django-cors-headers) for the realtime HTTP routes only: the ERP's other URLs keep their own policy.
CORS_ALLOWED_ORIGINS = FRONTEND_ORIGINS
CORS_URLS_REGEX = cors_urls_regex()
