"""Django's PostgreSQL backend, whose connection pool checks a connection on checkout without a round trip.

With ``CONN_HEALTH_CHECKS = True`` and a pool (``OPTIONS["pool"]``), Django gives psycopg's pool its full check, an
empty query on every checkout, and passes no way to choose another (a ``check`` in the pool options collides with
its own). This backend replaces that check with ``likha_realtime.db.pool.QuietCheck`` once the pool exists; without
health checks or without a pool it is Django's backend unchanged. It also runs ``db.precommit`` callbacks right
before each commit (``BeforeCommit``: events carry exactly the rows their transaction committed). Everything else is
Django's. A host on another subclass of it (PostGIS, say) gets the same with ``BeforeCommit`` and ``QuietPool`` in
its own backend's ``DatabaseWrapper``.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

from likha_realtime.db import precommit
from likha_realtime.db.pool import QuietCheck


class QuietPool:
    """Mixin for a PostgreSQL ``DatabaseWrapper``: its pool's health check is ``QuietCheck``."""

    settings_dict: dict[str, Any]

    @property
    def pool(self) -> Any:
        pool = super().pool  # type: ignore[misc]  # Django's: made on first use, one per alias
        if pool is not None and self.settings_dict["CONN_HEALTH_CHECKS"] and not isinstance(pool._check, QuietCheck):
            # psycopg_pool's attribute for its ``check`` argument (tests/likha_realtime/db/test_pool.py)
            pool._check = QuietCheck(pool._check)
        return pool


class BeforeCommit:
    """Mixin for a ``DatabaseWrapper``: ``db.precommit`` callbacks run inside each transaction right before its
    ``COMMIT`` (the fan-out reads the rows the transaction wrote there: exactly what commits)."""

    def _commit(self) -> None:
        precommit.run(self)
        try:
            super()._commit()  # type: ignore[misc]  # Django's
        except BaseException:
            precommit.commit_failed(self)
            raise


class DatabaseWrapper(BeforeCommit, QuietPool, base.DatabaseWrapper):
    pass
