"""Fixtures for live tests: one Redis and one seeded database per run; daphne processes per configuration."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.live.harness import DaphneProcess, LiveDatabase, RedisServer, server_env

ADMIN = ("admin@example.com", "admin-password")
EDITOR = ("editor@example.com", "editor-password")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/live/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def live_db() -> Iterator[LiveDatabase]:
    database = LiveDatabase.create()
    try:
        database.manage("migrate", "--noinput")
        database.manage("seed_demo")
        yield database
    finally:
        if database.drop:
            database.drop()


StartServer = Callable[..., DaphneProcess]


@pytest.fixture(scope="module")
def start_server(redis_server: RedisServer, live_db: LiveDatabase) -> Iterator[StartServer]:
    """``start_server(**env)`` starts (or reuses, within the module) a daphne with those env overrides."""
    running: dict[tuple[tuple[str, str], ...], DaphneProcess] = {}
    prefix = f"likha-test-{uuid.uuid4().hex[:8]}"

    def start(**overrides: str) -> DaphneProcess:
        key = tuple(sorted(overrides.items()))
        if key not in running:
            env = server_env(live_db.env, {"REDIS_URL": redis_server.url, "REDIS_PREFIX": prefix}, overrides)
            running[key] = DaphneProcess(env).start()
        return running[key]

    yield start
    for server in running.values():
        server.stop()
