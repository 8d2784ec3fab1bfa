"""The Prometheus metrics move with what they count: connections, authentications, subscriptions (REST and GraphQL),
events and their frames, the commit-to-send latency, slow-reader closes and channel-layer errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from likha_realtime import metrics
from likha_realtime.events.stats import stats
from likha_realtime.sockets.rest import RestConsumer
from tests.likha_realtime.graphql.support import communicator, pair_for, start_subscription, update_product
from tests.likha_realtime.support import (
    FRAME_WAIT,
    Roles,
    ask,
    closed_with,
    connected_socket,
    make,
    next_frame,
    realtime,
    run_db,
    set_price,
    subscribe,
)
from tests.support import wait_until_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_layer")]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def moved(name: str, **labels: str) -> Callable[[], float]:
    """How far the sample ``name`` moved since this call (other tests in this process moved it before)."""
    start = sample(name, **labels)
    return lambda: sample(name, **labels) - start


async def test_an_open_socket_counts_under_its_socket_and_mode_until_it_closes(roles: Roles) -> None:
    handshake = moved("likha_realtime_connections", socket="rest", mode="handshake")
    public = moved("likha_realtime_connections", socket="rest", mode="public")
    with realtime(REST_AUTH="handshake", HEARTBEAT_ENABLED=False):
        comm = await connected_socket("/websockets")
        assert (handshake(), public()) == (1, 0)
        await comm.disconnect()
    assert (handshake(), public()) == (0, 0)


async def test_logins_count_by_result_and_reason(roles: Roles) -> None:
    ok = moved("likha_realtime_auth_total", socket="rest", result="success", reason="ok")
    failed = moved("likha_realtime_auth_total", socket="rest", result="failure", reason="AUTH_FAILED")
    with realtime(REST_AUTH="public", HEARTBEAT_ENABLED=False):
        comm = await connected_socket("/websockets")
        assert (await ask(comm, {"type": "auth", "access_token": roles.editor}))["status"] == "ok"
        assert (await ask(comm, {"type": "auth", "access_token": "not-a-token"}))["status"] == "error"
        await comm.disconnect()
    assert (ok(), failed()) == (1, 1)


async def test_a_handshake_that_times_out_counts_under_the_code_its_error_frame_carries(roles: Roles) -> None:
    failed = moved("likha_realtime_auth_total", socket="rest", result="failure", reason="AUTH_FAILED")
    with realtime(REST_AUTH="handshake", REST_AUTH_TIMEOUT=0.1, HEARTBEAT_ENABLED=False):
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        frame = await comm.receive_json_from(timeout=FRAME_WAIT)
        assert (await closed_with(comm))[0] == 4401
    assert frame["error"]["code"] == "AUTH_FAILED"  # PROTOCOL §3: "Authentication handshake failed."
    assert failed() == 1


async def test_rest_subscriptions_count_while_they_are_open(comm: WebsocketCommunicator) -> None:
    open_now = moved("likha_realtime_subscriptions", socket="rest")
    await subscribe(comm, query={"fields": ["id"]}, uid="a")
    await subscribe(comm, query={"fields": ["id"]}, uid="b")
    await subscribe(comm, query={"fields": ["sku"]}, uid="b")  # the same uid replaces: still two
    assert open_now() == 2
    await ask(comm, {"type": "unsubscribe", "uid": "a"})
    assert open_now() == 1
    await comm.disconnect()
    assert open_now() == 0


async def test_a_delivered_frame_counts_and_its_commit_to_send_time_is_observed(comm: WebsocketCommunicator) -> None:
    keys = await run_db(make, ("M-1", "3.00"))
    metrics.frames.flush()  # frames an earlier test's socket wrote, counted after its loop closed, are not ours
    delivered = moved("likha_realtime_events_total", outcome="delivered")
    published = moved("likha_realtime_events_total", outcome="published")
    observed = moved("likha_realtime_commit_to_send_seconds_count")
    await subscribe(comm, query={"fields": ["id", "price"]}, uid="m")
    await run_db(set_price, keys["M-1"], "4.00")
    assert (await next_frame(comm))["event"] == "update"
    await wait_until_async(lambda: delivered() >= 1, FRAME_WAIT)  # handed to the counter on the loop, batched
    assert (delivered(), published(), observed()) == (1, 1, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_observes_an_event_at_most_every_sample_period_and_every_other_event() -> None:
    meter, clock = metrics.FrameMeter(), Clock()
    meter.clock = clock  # type: ignore[method-assign]
    observed = moved("likha_realtime_commit_to_send_seconds_count")
    late = moved("likha_realtime_commit_to_send_seconds_bucket", le="0.25")
    first, second = object(), object()
    for _ in range(1000):  # one pass of one event to 1,000 sockets, within the same millisecond
        meter.sent(first, clock.now - 0.2)
    assert observed() == 1 and late() == 1
    clock.now += 2 * meter.SAMPLE_SECONDS
    meter.sent(first, clock.now - 0.2)  # a straggler of the same event, later
    meter.sent(second, clock.now - 0.2)  # another event
    meter.sent(second, None)  # an event whose publish time is not known: counted, not observed
    assert observed() == 3
    assert meter.pending == 0  # no event loop in this thread: handed to the counter at once


async def test_the_meter_hands_frames_to_the_counter_on_the_loop_in_one_batch() -> None:
    meter = metrics.FrameMeter()
    delivered = moved("likha_realtime_events_total", outcome="delivered")
    for _ in range(500):
        meter.sent(object(), None)
    assert (meter.pending, delivered()) == (500, 0)
    await wait_until_async(lambda: delivered() == 500, FRAME_WAIT)
    assert meter.pending == 0


async def test_graphql_operations_count_while_they_run(seeded: dict[str, int]) -> None:
    running = moved("likha_realtime_subscriptions", socket="graphql")
    pair = await pair_for("editor@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=pair.access) as comm:
            await start_subscription(comm)
            assert running() == 1
            await database_sync_to_async(update_product)(seeded["shelf"], stock=5)
            assert (await comm.receive_json_from(timeout=FRAME_WAIT))["type"] == "next"
            await comm.send_json_to({"id": "s", "type": "complete"})
            await comm.send_json_to({"type": "ping"})
            assert (await comm.receive_json_from(timeout=FRAME_WAIT))["type"] == "pong"  # the complete was handled
            assert running() == 0


@pytest.mark.parametrize(
    ("field", "name", "labels"),
    [
        ("lost", "likha_realtime_events_total", {"outcome": "lost"}),
        ("queue_dropped", "likha_realtime_events_total", {"outcome": "dropped_queue"}),
        ("deliveries_dropped", "likha_realtime_events_total", {"outcome": "dropped_backlog"}),
        ("publish_failures", "likha_realtime_channel_layer_errors_total", {"operation": "publish"}),
        ("receive_failures", "likha_realtime_channel_layer_errors_total", {"operation": "receive"}),
        ("slow_readers_closed", "likha_realtime_slow_reader_closes_total", {}),
    ],
)
def test_each_event_counter_moves_its_metric(field: str, name: str, labels: dict[str, str]) -> None:
    before_stat, counted = getattr(stats, field), moved(name, **labels)
    stats.add(field, 3)
    assert (getattr(stats, field) - before_stat, counted()) == (3, 3)


def test_the_exposition_names_every_metric() -> None:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=")
    for family in (
        "likha_realtime_connections",
        "likha_realtime_auth_total",
        "likha_realtime_subscriptions",
        "likha_realtime_events_total",
        "likha_realtime_commit_to_send_seconds_bucket",
        "likha_realtime_slow_reader_closes_total",
        "likha_realtime_channel_layer_errors_total",
    ):
        assert f"# TYPE {family.removesuffix('_bucket').removesuffix('_total')}".encode() in body, family


def test_the_meter_arms_again_after_its_event_loop_closed() -> None:
    meter = metrics.FrameMeter()
    delivered = moved("likha_realtime_events_total", outcome="delivered")

    async def send_one() -> None:
        meter.sent(object(), None)

    asyncio.run(send_one())  # the loop closes before its flush timer fires
    assert delivered() == 0

    async def send_and_wait() -> None:
        meter.sent(object(), None)
        await wait_until_async(lambda: delivered() == 2, FRAME_WAIT)

    asyncio.run(send_and_wait())


def test_process_ended_hands_over_the_frames_still_counted() -> None:
    metrics.frames.flush()  # what earlier tests' loops left
    delivered = moved("likha_realtime_events_total", outcome="delivered")
    metrics.frames.pending += 3
    metrics.process_ended()
    assert (metrics.frames.pending, delivered()) == (0, 3)


async def test_a_metric_that_cannot_be_recorded_breaks_no_socket(
    roles: Roles, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise FileNotFoundError("/gone/gauge_livesum_1.db")

    monkeypatch.setattr(metrics.CONNECTIONS, "labels", broken)
    monkeypatch.setattr(metrics.AUTH, "labels", broken)
    with realtime(REST_AUTH="handshake", HEARTBEAT_ENABLED=False):
        for _ in range(2):
            comm = await connected_socket("/websockets")
            assert (await ask(comm, {"type": "auth", "access_token": roles.editor}))["status"] == "ok"
            await comm.disconnect()
    logged = [record.getMessage() for record in caplog.records if record.name == "likha_realtime.metrics"]
    assert logged == [
        "Could not record a metric in connection_opened (logged once)",
        "Could not record a metric in auth_result (logged once)",
        "Could not record a metric in connection_closed (logged once)",
    ]


def test_a_multi_process_directory_that_does_not_exist_stops_the_import_with_its_name(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, "-c", "import likha_realtime.metrics"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(missing)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"ImproperlyConfigured: PROMETHEUS_MULTIPROC_DIR='{missing}' is not a writable directory" in result.stderr
