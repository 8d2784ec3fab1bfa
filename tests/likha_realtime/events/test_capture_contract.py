"""Event capture's batching, and the parts of Django's private on-commit list it relies on (``_keep_flush_last``).

Django has no public way to run code after the last on_commit hook of a commit, so capture keeps its flush entry
last in ``connection.run_on_commit``. The ``test_django_*`` tests pin what that relies on: if one fails, Django
changed its on-commit list and ``likha_realtime/events/capture.py`` must change with it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection, transaction

from likha_realtime.events import capture
from likha_realtime.events.model import Event

pytestmark = pytest.mark.django_db(transaction=True)


def appender(ran: list[str], name: str) -> Callable[[], None]:
    def hook() -> None:
        ran.append(name)

    return hook


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[list[Event]]:
    """The batches capture publishes, in order (instead of sending them to the channel layer)."""
    batches: list[list[Event]] = []
    monkeypatch.setattr(capture, "publish_events", batches.append)
    return batches


def update(*keys: int, collection: str = "products") -> Event:
    return Event(collection, "update", keys)


# -- what capture relies on in Django ---------------------------------------------------------------------------


def test_django_keeps_each_on_commit_hook_as_savepoint_ids_callable_and_robust() -> None:
    first, second = appender([], "first"), appender([], "second")
    with transaction.atomic():
        transaction.on_commit(first)
        with transaction.atomic():
            transaction.on_commit(second, robust=True)
            entries = list(connection.run_on_commit)
            inner = set(connection.savepoint_ids)

    assert len(inner) == 1
    assert entries == [(set(), first, False), (inner, second, True)]


def test_django_runs_the_commit_hooks_in_the_order_of_its_list_at_commit_time() -> None:
    ran: list[str] = []
    with transaction.atomic():
        transaction.on_commit(appender(ran, "a"))
        transaction.on_commit(appender(ran, "b"))
        hooks = connection.run_on_commit
        hooks[0], hooks[1] = hooks[1], hooks[0]
        hooks.append((set(), appender(ran, "appended"), False))

    assert ran == ["b", "a", "appended"]


def test_django_savepoint_rollback_drops_the_entries_holding_its_id_and_keeps_those_without_ids() -> None:
    ran: list[str] = []
    outer, inner, no_ids = appender(ran, "outer"), appender(ran, "inner"), appender(ran, "no ids")
    with transaction.atomic():
        transaction.on_commit(outer)
        with transaction.atomic():
            transaction.on_commit(inner)
            connection.run_on_commit.append((set(), no_ids, False))
            transaction.set_rollback(True)  # roll back on leaving the block
        assert [func for _, func, _ in connection.run_on_commit] == [outer, no_ids]

    assert ran == ["outer", "no ids"]


def test_django_full_rollback_discards_every_entry_even_those_without_ids() -> None:
    ran: list[str] = []
    with transaction.atomic():
        transaction.on_commit(appender(ran, "hook"))
        connection.run_on_commit.append((set(), appender(ran, "no ids"), False))
        transaction.set_rollback(True)  # roll back on leaving the block
    with transaction.atomic():
        pass

    assert (ran, connection.run_on_commit) == ([], [])


# -- capture's batching on top of it -----------------------------------------------------------------------------


def test_outside_a_transaction_each_event_is_published_at_once(published: list[list[Event]]) -> None:
    capture.record(update(1))
    assert published == [[update(1)]]

    capture.record(update(2))
    assert published == [[update(1)], [update(2)]]


def test_the_events_of_a_commit_are_published_once_after_it_as_one_coalesced_batch(
    published: list[list[Event]],
) -> None:
    with transaction.atomic():
        capture.record(update(1))
        capture.record(update(2))
        capture.record(update(3, collection="customers"))
        capture.record(Event("customers", "delete", (4,)))
        assert published == []
        assert [func for _, func, _ in connection.run_on_commit].count(capture._flush) == 1

    assert published == [[update(1, 2), update(3, collection="customers"), Event("customers", "delete", (4,))]]


def test_a_rolled_back_savepoint_drops_its_events_and_the_rest_of_the_commit_is_still_published(
    published: list[list[Event]],
) -> None:
    with transaction.atomic():
        capture.record(update(1))
        with transaction.atomic():
            capture.record(update(2))
            transaction.set_rollback(True)  # roll back on leaving the block
        capture.record(update(3))

    assert published == [[update(1, 3)]]


def test_a_flush_added_inside_a_rolled_back_savepoint_still_publishes_the_later_writes(
    published: list[list[Event]],
) -> None:
    with transaction.atomic():
        with transaction.atomic():
            capture.record(update(1))  # the commit's first write: its flush entry is added inside the savepoint
            transaction.set_rollback(True)  # roll back on leaving the block
        capture.record(update(2))

    assert published == [[update(2)]]


def test_a_commit_whose_only_writes_were_rolled_back_to_a_savepoint_publishes_nothing(
    published: list[list[Event]],
) -> None:
    with transaction.atomic(), transaction.atomic():  # a transaction, and a savepoint in it
        capture.record(update(1))
        transaction.set_rollback(True)  # roll back on leaving the block

    assert published == []


def test_a_rolled_back_transaction_publishes_nothing_and_leaves_nothing_for_the_next(
    published: list[list[Event]],
) -> None:
    with transaction.atomic():
        capture.record(update(1))
        transaction.set_rollback(True)  # roll back on leaving the block
    with transaction.atomic():
        capture.record(update(2))

    assert published == [[update(2)]]


def test_a_hook_registered_after_a_write_runs_after_that_write_is_published(published: list[list[Event]]) -> None:
    batches_seen_by_hook: list[int] = []
    with transaction.atomic():
        capture.record(update(1))
        transaction.on_commit(lambda: batches_seen_by_hook.append(len(published)))
        capture.record(update(2))

    assert batches_seen_by_hook == [1]
    assert published == [[update(1)], [update(2)]]
