"""Django's PostgreSQL backend, whose connection pool checks a connection on checkout without a round trip.

With ``CONN_HEALTH_CHECKS = True`` and a pool (``OPTIONS["pool"]``), Django gives psycopg's pool its full check, an
empty query on every checkout, and passes no way to choose another (a ``check`` in the pool options collides with
its own). This backend replaces that check with ``likha_realtime.db.pool.QuietCheck`` once the pool exists; without
health checks or without a pool it is Django's backend unchanged. Everything else is Django's. A host on another
subclass of it (PostGIS, say) gets the same with ``QuietPool`` in its own backend's ``DatabaseWrapper``.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base

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


class DatabaseWrapper(QuietPool, base.DatabaseWrapper):
    pass
