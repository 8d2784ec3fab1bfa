"""Fixtures shared by the live tests (tests/live), the embedding test (tests/embedding) and the README test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live.harness import RedisServer, find_or_start_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis for the whole run: REDIS_URL's, the machine's, or a private redis-server; a clear exit without."""
    try:
        server = find_or_start_redis()
    except RuntimeError as exc:
        pytest.exit(str(exc), returncode=3)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _login_throttle_counts() -> None:
    """Each test starts with no login counted (the in-process cache of settings.test): the suite logs in from one
    address far more often than a client would; the throttle's own tests count from zero."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from realtime_auth.conf import auth_settings

    cache = caches[auth_settings.LOGIN_THROTTLE_CACHE]
    if isinstance(cache, LocMemCache):  # never a shared cache (Redis): clearing it would flush other servers' keys
        cache.clear()
