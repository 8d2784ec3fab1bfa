"""``seed_demo`` on a database that has no user table: a clear error, never "no such table".

A demo database made before the demo's user model moved from realtime_auth to erp_demo keeps its users in
``realtime_auth_user`` and has no ``erp_demo_user``, while every migration is recorded as applied (the moved model's
migration names did not change), so ``migrate`` has nothing to do. Such a database is made here as the old code left
it: migrated, then with the user tables under their old names and the old migrations recorded. Everything runs as a
user would, through ``manage.py`` on a SQLite file.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.live.harness import ROOT, server_env

OLD_TABLES = {
    "erp_demo_user": "realtime_auth_user",
    "erp_demo_user_groups": "realtime_auth_user_groups",
    "erp_demo_user_user_permissions": "realtime_auth_user_user_permissions",
}
OLD_MIGRATIONS = ("0002_revoked_session", "0003_email_case_insensitive")


def manage(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=server_env({"SQLITE_PATH": str(database)}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_it_old(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        for new, old in OLD_TABLES.items():
            connection.execute(f'ALTER TABLE "{new}" RENAME TO "{old}"')
        connection.executemany(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('realtime_auth', ?, '2026-11-26')",
            [(name,) for name in OLD_MIGRATIONS],
        )
    connection.close()


def rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        count: int = connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
    connection.close()
    return count


def test_an_unmigrated_database_is_told_to_migrate_first(tmp_path: Path) -> None:
    seeded = manage(tmp_path / "empty.sqlite3", "seed_demo")

    assert seeded.returncode == 1
    assert seeded.stderr.strip().splitlines()[-1] == (
        "CommandError: The database has no table erp_demo_user for the users: run `manage.py migrate` first."
    )


def test_a_database_without_seed_demos_record_is_told_to_migrate_first(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    assert manage(database, "migrate", "--noinput").returncode == 0
    assert manage(database, "migrate", "erp_demo", "0001", "--noinput").returncode == 0  # as before the record

    seeded = manage(database, "seed_demo")

    assert seeded.returncode == 1
    assert seeded.stderr.strip().splitlines()[-1] == (
        "CommandError: The database has no table erp_demo_seededuser: run `manage.py migrate` first."
    )
    assert rows(database, "erp_demo_product") == rows(database, "erp_demo_user") == 0


def test_a_database_of_the_old_demo_is_refused_with_what_to_do_and_left_untouched(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    assert manage(database, "migrate", "--noinput").returncode == 0
    make_it_old(database)

    migrated = manage(database, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.splitlines()[-1].strip() == "No migrations to apply."  # migrate cannot help

    seeded = manage(database, "seed_demo")
    assert seeded.returncode == 1
    assert seeded.stderr.strip().splitlines()[-1] == (
        "CommandError: This database was made by an older version of the demo: its users are in realtime_auth_user "
        "and it has no table erp_demo_user (the demo's user model moved to erp_demo), which migrate cannot convert; "
        f"nothing was changed. Delete the database file {database}, or point DATABASE_URL/SQLITE_PATH at a new "
        "database; then run `make run` (or `manage.py migrate` and `manage.py seed_demo`) again."
    )
    assert seeded.stdout == ""
    assert rows(database, "erp_demo_product") == rows(database, "auth_group") == 0
