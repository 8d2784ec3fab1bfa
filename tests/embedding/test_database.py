"""The embedding test's PostgreSQL server: the one the run names (DATABASE_URL in the PostgreSQL pass,
TEST_DATABASE_URL — which the Makefile exports — in the SQLite pass), and a clear failure when it cannot be reached."""

from __future__ import annotations

import pytest

from tests.embedding.host import DEFAULT_POSTGRES_URL, Database, postgres_url
from tests.live.harness import free_port

PG = "postgres://postgres@127.0.0.1:5432/likha"
OTHER_PG = "postgresql://erp:secret@db.internal:6543/likha_ci"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"DATABASE_URL": PG, "TEST_DATABASE_URL": OTHER_PG}, PG),  # the PostgreSQL pass: its own database's server
        ({"TEST_DATABASE_URL": OTHER_PG}, OTHER_PG),  # the SQLite pass: DATABASE_URL unset
        ({"DATABASE_URL": "sqlite:///db.sqlite3", "TEST_DATABASE_URL": OTHER_PG}, OTHER_PG),
        ({"DATABASE_URL": "", "TEST_DATABASE_URL": ""}, DEFAULT_POSTGRES_URL),
        ({}, DEFAULT_POSTGRES_URL),
    ],
    ids=["postgres pass", "sqlite pass", "sqlite database url", "both empty", "neither"],
)
def test_the_host_runs_on_the_postgres_server_the_run_names(environ: dict[str, str], expected: str) -> None:
    assert postgres_url(environ) == expected


def test_an_unreachable_server_fails_the_test_with_what_to_do() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(pytest.fail.Exception) as failed:
        Database.create({"TEST_DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/likha"})
    message = str(failed.value)
    assert message.startswith(
        f"The embedding test runs its host ERP on PostgreSQL. PostgreSQL is not reachable at 127.0.0.1:{port} ("
    )
    assert message.endswith(").\nStart it (Debian: pg_ctlcluster <version> main start) or set TEST_DATABASE_URL.\n")
    assert failed.value.pytrace is False  # the message alone, no traceback
