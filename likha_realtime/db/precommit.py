"""Work a transaction does right before it commits, for backends that offer the moment (``db.postgresql``).

Django has ``on_commit`` (after) but no hook before a commit. The project's PostgreSQL backend calls each callback
registered here with the connection inside the transaction, after its last write and before ``COMMIT``: the fan-out
reads the rows the transaction wrote there (``events.capture``), while the transaction still holds their row locks,
so what it reads is exactly what commits (read after the commit, another writer's commit could come in between). A
callback that fails is logged and the commit goes on: the fan-out then reads after the commit, as on any other
backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_callbacks: list[Callable[[Any], None]] = []
_failed: list[Callable[[Any], None]] = []


def before_commit(callback: Callable[[Any], None], failed: Callable[[Any], None] | None = None) -> None:
    """Call ``callback(connection)`` before each commit of a backend that supports it, and ``failed(connection)``
    when that COMMIT then fails (a deferred constraint, a serialization failure, a lost connection): what the
    callback read never committed. Each registered once."""
    if callback not in _callbacks:
        _callbacks.append(callback)
    if failed is not None and failed not in _failed:
        _failed.append(failed)


def run(connection: Any) -> None:
    """What the backend calls right before it commits."""
    _call_each(_callbacks, connection, "a before-commit callback failed; the commit goes on")


def commit_failed(connection: Any) -> None:
    """What the backend calls when the COMMIT that followed ``run`` raised."""
    _call_each(_failed, connection, "a commit-failed callback failed")


def _call_each(callbacks: list[Callable[[Any], None]], connection: Any, failure: str) -> None:
    for callback in callbacks:
        try:
            callback(connection)
        except Exception:
            logger.exception(failure)
