"""Publishing while the channel layer fails: writers never wait, events are held back in order and sent when Redis
answers, overflow is dropped, counted and announced (``lost``), and sequence numbers are per collection."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from redis.exceptions import ConnectionError as RedisConnectionError

from likha_realtime.events.model import Event
from likha_realtime.events.stats import stats
from likha_realtime.events.transport import PROBE_GROUP, Publisher
from tests.likha_realtime.support import realtime
from tests.support import wait_until_async


class FlakyLayer:
    """A channel layer whose ``group_send`` raises like redis-py while ``down`` (or hangs while ``hung``)."""

    def __init__(self) -> None:
        self.down = False
        self.hung = False
        self.calls = 0
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.calls += 1
        if self.hung:
            await asyncio.sleep(60)
        if self.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.sent.append((group, message))

    def events(self) -> list[tuple[str, str, int, bool]]:
        return [
            (group, message["keys"], message["seq"], message.get("lost", False))
            for group, message in self.sent
            if group != PROBE_GROUP
        ]


class Harness:
    """A publisher on a ``FlakyLayer`` whose retry thread is run by the test (``retry()``), never by itself."""

    def __init__(self) -> None:
        self.layer = FlakyLayer()
        self.threads: list[Callable[[], None]] = []
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] = lambda count: None  # what happens while the thread sleeps
        self.publisher = Publisher(lambda: self.layer, self.threads.append, self.sleep, "pub-1")

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.on_sleep(len(self.sleeps))

    def write(self, collection: str, key: int) -> float:
        started = time.monotonic()
        self.publisher.publish([Event(collection, "update", (key,))])
        return time.monotonic() - started

    def retry(self) -> None:
        """Run the retry thread the publisher asked for (its sleeps are recorded, not slept)."""
        (target,) = self.threads
        self.threads.clear()
        target()


@pytest.fixture(autouse=True)
def clean_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_sequence_numbers_are_per_collection(harness: Harness) -> None:
    harness.write("products", 1)
    harness.write("customers", 7)
    harness.write("products", 2)
    assert harness.layer.events() == [
        ("likha.events.products", "[1]", 1, False),
        ("likha.events.customers", "[7]", 1, False),
        ("likha.events.products", "[2]", 2, False),
    ]
    assert stats.published == 3


def test_after_a_failure_writes_skip_the_layer_and_everything_goes_in_order_when_it_answers(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.write("products", 1)
    harness.layer.down = True
    with caplog.at_level(logging.INFO, logger="likha_realtime.events.transport"):
        harness.write("products", 2)  # fails: publishing pauses, this event is held back
        calls = harness.layer.calls
        for key in range(3, 8):
            harness.write("products", key)
        assert harness.layer.calls == calls, "a paused publisher must not touch the layer on the writer's path"
        assert harness.publisher.paused and len(harness.publisher.held) == 6
        assert stats.as_dict() == {
            **stats.as_dict(),
            "published": 1,
            "publish_failures": 1,
            "publish_deferred": 6,
        }

        # The retry thread sleeps, finds Redis still down, sleeps again; Redis answers during its second sleep.
        harness.on_sleep = lambda count: setattr(harness.layer, "down", count < 2)
        harness.retry()

    assert harness.sleeps == [1, 1]
    assert not harness.publisher.paused and not harness.publisher.held
    assert harness.layer.events() == [("likha.events.products", f"[{key}]", key, False) for key in range(1, 8)]
    assert stats.published == 7
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("publishing events: the channel layer failed (ConnectionError: Error 111")
    assert messages[0].endswith("; publishing paused, retried every 1s")
    assert messages[-1].startswith("publishing events: the channel layer answers again after ")
    assert messages[-1].endswith("event(s) held back or dropped); publishing resumed")
    assert len(messages) == 2  # no line per failure or per held-back event


def test_overflow_is_dropped_counted_and_the_next_event_says_events_were_lost(harness: Harness) -> None:
    harness.layer.down = True
    with realtime(CHANNEL_LAYER_PUBLISH_BUFFER=2):
        for key in range(1, 6):
            harness.write("products", key)
        harness.layer.down = False
        harness.retry()
        harness.write("products", 6)
        harness.write("products", 7)
    assert stats.publish_dropped == 3 and stats.publish_deferred == 2
    # 1 (failed, held) and 2 (held) go; 3-5 are dropped; 6 says that events were lost before it; 7 is normal.
    assert harness.layer.events() == [
        ("likha.events.products", "[1]", 1, False),
        ("likha.events.products", "[2]", 2, False),
        ("likha.events.products", "[6]", 6, True),
        ("likha.events.products", "[7]", 7, False),
    ]


def test_a_hanging_layer_costs_one_write_the_timeout_and_the_others_nothing(harness: Harness) -> None:
    harness.layer.hung = True
    with realtime(CHANNEL_LAYER_TIMEOUT=0.2):
        first = harness.write("products", 1)
        others = [harness.write("products", key) for key in range(2, 12)]
    assert first < 5  # bounded by the timeout (0.2 s; generous for a loaded machine)
    assert max(others) < 0.1 * max(first, 1), others
    assert stats.publish_failures == 1 and stats.publish_deferred == 11


def test_without_a_layer_nothing_is_published() -> None:
    publisher = Publisher(lambda: None, lambda target: None, lambda seconds: None)
    publisher.publish([Event("products", "update", (1,))])
    assert stats.as_dict() == {**stats.as_dict(), "published": 0, "publish_failures": 0}


async def test_a_server_threads_publish_does_not_wait_for_the_servers_busy_loop() -> None:
    """A request's (or a socket's database) thread publishes on the process's sender loop: a server loop busy with
    its sockets (here: blocked) does not hold the writer, which keeps its pooled database connection meanwhile."""
    harness = Harness()
    started, loop_blocked, published = threading.Event(), threading.Event(), threading.Event()

    def write() -> None:  # run by asgiref for this loop: async_to_sync would send on this (blocked) loop
        started.set()
        loop_blocked.wait(10)
        harness.write("products", 1)
        published.set()

    task = asyncio.ensure_future(sync_to_async(write, thread_sensitive=False)())
    await wait_until_async(started.is_set, 10)
    loop_blocked.set()
    assert published.wait(10)  # the server loop is blocked right here, and the write is sent without it
    await task
    assert harness.layer.events() == [("likha.events.products", "[1]", 1, False)]
