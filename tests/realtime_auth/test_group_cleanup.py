"""Group memberships left at close are removed behind it, one at a time, retried, abandoned with one warning."""

from __future__ import annotations

import logging

import pytest

from realtime_auth import group_cleanup
from realtime_auth.group_cleanup import GroupCleanup
from tests.support import wait_until_async


class FlakyLayer:
    """A channel layer whose ``group_discard`` fails ``failures`` times, then works."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, str]] = []
        self.left: list[tuple[str, str]] = []

    async def group_discard(self, group: str, channel: str) -> None:
        self.calls.append((group, channel))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Too many connections")
        self.left.append((group, channel))


@pytest.fixture(autouse=True)
def no_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_cleanup, "RETRY_SECONDS", (0.0, 0.0))


async def test_memberships_are_removed_after_failures() -> None:
    cleanup, layer = GroupCleanup(), FlakyLayer(failures=2)
    cleanup.leave(layer, "specific.a!1", frozenset({"g1", "g2"}))
    await wait_until_async(lambda: cleanup._task is not None and cleanup._task.done())
    assert sorted(layer.left) == [("g1", "specific.a!1"), ("g2", "specific.a!1")]
    assert len(layer.calls) == 4 and cleanup.abandoned == 0 and not cleanup.pending


async def test_a_membership_failing_past_the_retries_is_abandoned_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleanup, layer = GroupCleanup(), FlakyLayer(failures=100)
    with caplog.at_level(logging.WARNING, logger="realtime_auth.group_cleanup"):
        cleanup.leave(layer, "specific.a!1", frozenset({"g1", "g2"}))
        await wait_until_async(lambda: cleanup._task is not None and cleanup._task.done())
    assert len(layer.calls) == 6  # each: the first try and two retries
    assert cleanup.abandoned == 2 and not cleanup.pending
    assert [r.getMessage() for r in caplog.records] == [
        "2 group membership(s) of closed sockets could not be removed; the channel layer expires them"
    ]


async def test_one_cleanup_per_event_loop() -> None:
    assert group_cleanup.group_cleanup() is group_cleanup.group_cleanup()
