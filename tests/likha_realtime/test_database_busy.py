"""A database pool out of connections (``psycopg_pool.PoolTimeout``): HTTP 503 with ``Retry-After`` and the error
envelope, the socket's ``SERVICE_UNAVAILABLE`` error frame; the socket stays open (PROTOCOL §4, §9)."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from django.db import OperationalError
from django.test import Client
from psycopg_pool import PoolTimeout

from likha_realtime.access.items import Items
from realtime_auth.busy import database_busy
from tests.likha_realtime.support import Roles, ask, error, open_socket

BUSY = "The server is busy, try again shortly."


def pool_timeout() -> OperationalError:
    """The exception Django raises when its psycopg pool's wait runs out (the pool's error as the cause)."""
    try:
        try:
            raise PoolTimeout("couldn't get a connection after 30.00 sec")
        except PoolTimeout as cause:
            raise OperationalError(str(cause)) from cause
    except OperationalError as wrapped:
        return wrapped


def busy(*args: Any, **kwargs: Any) -> NoReturn:
    raise pool_timeout()


def test_the_pool_timing_out_is_told_apart_from_other_database_errors() -> None:
    assert database_busy(pool_timeout())
    assert database_busy(PoolTimeout("x"))
    later = RuntimeError("raised while handling it")
    later.__context__ = pool_timeout()
    assert database_busy(later)
    assert not database_busy(OperationalError("server closed the connection unexpectedly"))
    assert not database_busy(ValueError("x"))


@pytest.mark.django_db
def test_http_answers_503_with_retry_after_and_the_envelope(monkeypatch: pytest.MonkeyPatch, roles: Roles) -> None:
    monkeypatch.setattr(Items, "read_many", busy)

    response = Client().get("/items/products", HTTP_AUTHORIZATION=f"Bearer {roles.admin}")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {"errors": [{"message": BUSY, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}


@pytest.mark.django_db(transaction=True)
async def test_the_socket_answers_service_unavailable_and_stays_open(
    monkeypatch: pytest.MonkeyPatch, roles: Roles
) -> None:
    monkeypatch.setattr(Items, "read_many", busy)
    comm = await open_socket(f"/websockets?access_token={roles.admin}")
    try:
        read = {"type": "items", "action": "read", "collection": "products", "uid": "r"}
        assert await ask(comm, read) == error("items", "SERVICE_UNAVAILABLE", BUSY, uid="r")
        monkeypatch.undo()
        assert (await ask(comm, read))["type"] == "items"  # the same socket answers once the database does
    finally:
        await comm.disconnect()
