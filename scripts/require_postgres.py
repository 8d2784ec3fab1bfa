"""Fail fast, with a clear message, when the PostgreSQL server of a DATABASE_URL cannot be reached."""

from __future__ import annotations

import sys
from urllib.parse import urlparse

import psycopg


def main(url: str) -> int:
    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, connect_timeout=5):
            return 0
    except psycopg.OperationalError as exc:
        where = f"{parsed.hostname}:{parsed.port or 5432}"
        sys.stderr.write(
            f"PostgreSQL is not reachable at {where} ({exc}).\n"
            "Start it (Debian: pg_ctlcluster <version> main start) or set TEST_DATABASE_URL.\n"
        )
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
