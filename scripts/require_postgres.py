"""Fail fast, with a clear message, when the PostgreSQL server of a DATABASE_URL cannot be reached."""

from __future__ import annotations

import sys
from urllib.parse import urlparse

import psycopg


def unreachable(url: str) -> str | None:
    """Why the PostgreSQL server of ``url`` cannot be reached, and what to do (``None``: it answers)."""
    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, connect_timeout=5):
            return None
    except psycopg.OperationalError as exc:
        where = f"{parsed.hostname}:{parsed.port or 5432}"
        return (
            f"PostgreSQL is not reachable at {where} ({' '.join(str(exc).split())}).\n"
            "Start it (Debian: pg_ctlcluster <version> main start) or set TEST_DATABASE_URL.\n"
        )


def main(url: str) -> int:
    problem = unreachable(url)
    if problem is None:
        return 0
    sys.stderr.write(problem)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
