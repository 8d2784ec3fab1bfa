"""What every host settings module shares: the apps a host installs to use realtime_auth and likha_realtime, a
SQLite file named by ``HOST_DB`` (a temporary file of the test), the in-memory channel layer (one process)."""

from __future__ import annotations

import os
import secrets

SECRET_KEY = secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.realtime_auth.hosts.urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast: the probe hashes a few passwords

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "channels",
    "realtime_auth",
    "likha_realtime",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["HOST_DB"]}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# No REST_FRAMEWORK: realtime_auth's views answer with PROTOCOL §9's envelope whatever the host's DRF settings.
SIMPLE_JWT = {"ROTATE_REFRESH_TOKENS": True, "BLACKLIST_AFTER_ROTATION": True, "AUTH_HEADER_TYPES": ("Bearer",)}
