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
