"""Settings for the test suite: the base settings with fast hashing and an in-memory channel layer."""

from settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Unit and consumer tests run in one process; live tests start daphne with settings.base and Redis.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Threads of database_sync_to_async must not keep connections open past a test (PostgreSQL test-db teardown).
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # noqa: F405
# One process: the login throttle counts in memory (tests/conftest.py empties it before each test), never in a
# shared Redis whatever REDIS_URL says (clearing that cache would flush the database of other servers).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# In-process tests run without the pool of settings.base (the live daphne processes use it): pytest-django drops the
# test database at the end, which a pooled connection held by a thread of database_sync_to_async would block.
DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
