"""``db.precommit``: callbacks run before a commit; one that fails is logged and the commit goes on."""

from __future__ import annotations

from typing import Any

import pytest

from likha_realtime.db import precommit


@pytest.fixture
def callbacks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    registered: list[Any] = []
    monkeypatch.setattr(precommit, "_callbacks", registered)
    return registered


def test_callbacks_run_in_order_once_each_and_a_failing_one_does_not_stop_the_others(
    callbacks: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, Any]] = []

    def first(connection: Any) -> None:
        seen.append(("first", connection))
        raise RuntimeError("broken")

    def second(connection: Any) -> None:
        seen.append(("second", connection))

    precommit.before_commit(first)
    precommit.before_commit(second)
    precommit.before_commit(first)  # registered once

    precommit.run("the connection")

    assert seen == [("first", "the connection"), ("second", "the connection")]
    assert [r.getMessage() for r in caplog.records] == ["a before-commit callback failed; the commit goes on"]


def test_a_failed_commit_calls_the_failed_callbacks(callbacks: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    failed: list[Any] = []
    monkeypatch.setattr(precommit, "_failed", failed)
    forgotten: list[Any] = []
    precommit.before_commit(lambda connection: None, failed=forgotten.append)

    precommit.commit_failed("the connection")

    assert forgotten == ["the connection"]
