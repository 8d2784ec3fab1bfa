"""A health check for Django's PostgreSQL connection pool that costs no round trip for a connection in use.

With ``CONN_HEALTH_CHECKS`` on, Django gives its psycopg pool ``ConnectionPool.check_connection``: an empty query,
one round trip to PostgreSQL on *every* checkout. A realtime server checks a connection out for each short piece of
database work (an access token's login is one query): the check was 13 % of an authenticated connect's CPU
(py-spy, ``make bench``), a second round trip for each one that does the work.

``QuietCheck`` answers the same question cheaper. A connection that PostgreSQL closed (a restart, an
``idle_session_timeout``, ``pg_terminate_backend``) has something to read: the server's error and the end of the
stream; an idle, healthy one in autocommit has nothing. So a checkout polls the socket (a system call, no round trip)
and runs the full check only when there is input waiting, or when the connection has not been checked for
``recheck_after`` seconds (a link that died without a word). A connection that fails is discarded by the pool, which
hands out another one, as with the full check.

Django passes its pool no check of the host's choosing: the backend ``likha_realtime.db.postgresql`` puts this one
in place of Django's (``ENGINE = "likha_realtime.db.postgresql"`` with ``CONN_HEALTH_CHECKS = True``).
"""

from __future__ import annotations

import select
import time
import weakref
from collections.abc import Callable
from typing import Any

RECHECK_AFTER = 30.0  # seconds after which a connection gets the full check even with nothing to read


def has_input(conn: Any) -> bool:
    """Whether the connection's socket has something to read (or is closed, or in error) right now; ``True`` where
    the platform cannot tell without blocking (no ``poll``: Windows), so that the full check runs."""
    if not hasattr(select, "poll"):
        return True
    poller = select.poll()  # not select.select: a busy server's descriptors go past FD_SETSIZE (1024)
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class QuietCheck:
    """A psycopg pool ``check`` callback: the full check ``check`` (the pool's own, psycopg's ``check_connection``)
    only for a connection with input waiting, seen for the first time, or not checked for ``recheck_after``
    seconds."""

    def __init__(self, check: Callable[[Any], None], recheck_after: float = RECHECK_AFTER) -> None:
        self.check = check
        self.recheck_after = recheck_after
        self._checked: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self.full_checks = 0  # how many lendings took a round trip (tests, diagnostics)

    def __call__(self, conn: Any) -> None:
        now = time.monotonic()
        last = self._checked.get(conn)
        if last is not None and now - last < self.recheck_after and not conn.closed and not has_input(conn):
            return
        self.full_checks += 1
        self.check(conn)  # raises for a broken connection: the pool discards it and lends another
        self._checked[conn] = now
