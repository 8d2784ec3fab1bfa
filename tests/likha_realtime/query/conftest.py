"""Fixtures of the query tests: the table of the test-only ``Gadget`` model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from pytest_django import DjangoDbBlocker

from tests.likha_realtime.query.nullable import Gadget


@pytest.fixture(scope="session")
def gadgets(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[type[Gadget]]:
    """Creates the Gadget table for the session (outside any transaction, as SQLite's schema editor requires)."""
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        editor.create_model(Gadget)
    yield Gadget
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        editor.delete_model(Gadget)
