"""``db.pool.QuietCheck`` on a real PostgreSQL and psycopg pool: a connection in use is checked out without a round
trip, one that PostgreSQL closed is found out and replaced, one left unchecked too long gets the full check.

PostgreSQL only (the pool is psycopg's): runs in the PostgreSQL pass of ``make test`` (``DATABASE_URL``)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from likha_realtime.db.pool import QuietCheck, has_input
from tests.support import wait_until

DATABASE_URL = os.environ.get("DATABASE_URL", "")

pytestmark = pytest.mark.skipif(
    not DATABASE_URL.startswith(("postgres://", "postgresql://")),
    reason="PostgreSQL's pool: the PostgreSQL pass runs it",
)

# The server of DATABASE_URL, its maintenance database (the tests' own database is pytest-django's to create)
URL = make_conninfo(DATABASE_URL, dbname="postgres") if not pytestmark.args[0] else ""


class Counted:
    """psycopg's own full check, counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, conn: Any) -> None:
        self.calls += 1
        ConnectionPool.check_connection(conn)


def make_pool(check: QuietCheck) -> ConnectionPool:
    return ConnectionPool(URL, min_size=1, max_size=1, kwargs={"autocommit": True}, check=check, open=True)


@pytest.fixture
def counted() -> Counted:
    return Counted()


@pytest.fixture
def pool(counted: Counted) -> Iterator[ConnectionPool]:
    pool = make_pool(QuietCheck(counted))
    try:
        yield pool
    finally:
        pool.close()


def backend_pid(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        row = conn.execute("select pg_backend_pid()").fetchone()
        assert row is not None
        return int(row[0])


def test_a_connection_in_use_is_checked_once_not_on_every_checkout(pool: ConnectionPool, counted: Counted) -> None:
    pids = {backend_pid(pool) for _ in range(10)}
    assert len(pids) == 1  # the same connection, ten checkouts
    assert counted.calls == 1  # its first checkout only (psycopg's check_connection: ten round trips)


def test_a_connection_that_postgresql_closed_is_replaced_not_handed_out(pool: ConnectionPool, counted: Counted) -> None:
    with pool.connection() as conn:
        first = conn.info.backend_pid
        held = conn
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(%s)", [first])
    wait_until(lambda: has_input(held), 10, "the terminated connection's socket never became readable")

    assert backend_pid(pool) != first  # a new connection, and it answers (a dead one would raise here)
    assert counted.calls >= 2  # the dead one got the full check, which failed


def test_a_connection_not_checked_for_recheck_after_seconds_gets_the_full_check(counted: Counted) -> None:
    pool = make_pool(QuietCheck(counted, recheck_after=0))
    try:
        for _ in range(3):
            backend_pid(pool)
    finally:
        pool.close()
    assert counted.calls == 3


# -- the backend (ENGINE "likha_realtime.db.postgresql") ---------------------------------------------------------


def wrapper(health_checks: bool) -> Any:
    """The backend's connection wrapper for the maintenance database, with a pool of one connection."""
    from django.db import connection

    from likha_realtime.db.postgresql.base import DatabaseWrapper

    settings = copy.deepcopy(connection.settings_dict)
    settings.update(NAME="postgres", CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=health_checks)
    settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "pool": {"min_size": 1, "max_size": 1}}
    settings["TEST"] = {}
    return DatabaseWrapper(settings, alias=f"quiet_pool_{health_checks}")


def pid_of(db: Any) -> int:
    try:
        with db.cursor() as cursor:
            cursor.execute("select pg_backend_pid()")
            return int(cursor.fetchone()[0])
    finally:
        db.close()  # back to the pool


def test_the_backend_checks_its_pool_quietly_and_replaces_a_connection_postgresql_closed(
    django_db_blocker: Any,
) -> None:
    db = wrapper(health_checks=True)
    with django_db_blocker.unblock():  # a database of its own (the server's maintenance one), not the tests' one
        try:
            check = db.pool._check
            assert isinstance(check, QuietCheck) and check.check is ConnectionPool.check_connection
            first = pid_of(db)
            assert pid_of(db) == first and check.full_checks == 1  # Django's own check: a query per checkout
            with psycopg.connect(URL, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(%s)", [first])
            wait_until(lambda: _terminated(first), 10, "PostgreSQL did not end the backend")
            assert pid_of(db) != first  # a new, working connection through Django (the dead one would raise)
        finally:
            db.close_pool()


def _terminated(pid: int) -> bool:
    with psycopg.connect(URL, autocommit=True) as admin:
        return admin.execute("select count(*) from pg_stat_activity where pid = %s", [pid]).fetchone() == (0,)


def test_without_health_checks_the_backend_is_djangos() -> None:
    db = wrapper(health_checks=False)
    try:
        assert db.pool._check is None
    finally:
        db.close_pool()
