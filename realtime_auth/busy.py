"""A database out of connections for now (the pool's wait ran out): answered "try again", not as a server bug.

With Django's psycopg pool (docs/DEPLOYMENT.md "PostgreSQL"), a request that waits longer than the pool's
``timeout`` for a connection raises ``psycopg_pool.PoolTimeout`` (wrapped in Django's ``OperationalError``). Over
HTTP that is a 503 with ``Retry-After``, on a socket the ``SERVICE_UNAVAILABLE`` error frame (PROTOCOL §4).
"""

from __future__ import annotations

from realtime_auth.wire import ErrorCode, RealtimeError

RETRY_AFTER_SECONDS = 1


class DatabaseBusy(RealtimeError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    default_message = "The server is busy, try again shortly."


def _is_pool_timeout(exc: BaseException) -> bool:
    """``psycopg_pool.PoolTimeout`` (or a subclass), told by name: the pool is the host's choice, not a dependency."""
    return any(cls.__name__ == "PoolTimeout" and cls.__module__.startswith("psycopg_pool") for cls in type(exc).__mro__)


def database_busy(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, is the pool's wait running out."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _is_pool_timeout(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
