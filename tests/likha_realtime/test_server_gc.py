"""What the server does for the garbage collector: its young threshold (``tune_gc``, ``GC_YOUNG_THRESHOLD``), and the
HTTP channel of each WebSocket upgrade freed by reference counting, not left as a cycle for the collector's full
pass."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel, Request

from likha_realtime import server
from tests.likha_realtime.support import realtime


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    try:
        yield saved
    finally:
        gc.set_threshold(*saved)


def test_tune_gc_sets_the_young_threshold_from_the_setting(thresholds: tuple[int, int, int]) -> None:
    with realtime(GC_YOUNG_THRESHOLD=1234):
        server.tune_gc()
    assert gc.get_threshold() == (1234, thresholds[1], thresholds[2])  # the older generations' stay Python's


def test_the_server_tunes_the_collector_when_it_is_made(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    with realtime(GC_YOUNG_THRESHOLD=4321):
        server.Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])  # made, not run
    assert gc.get_threshold() == (4321, 10, 10)


def test_the_default_young_threshold_is_pythons_own() -> None:
    from likha_realtime.conf import DEFAULTS

    assert DEFAULTS["GC_YOUNG_THRESHOLD"] == 700


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Only reference counting frees objects meanwhile: what a cycle keeps stays."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def upgrade_channel() -> tuple[HTTPChannel, Request]:
    """An HTTP channel and the request it read, referring to each other as after daphne's upgrade."""
    channel = HTTPChannel()
    channel.transport = StringTransport()  # the connection's (the request reads its addresses)
    request = Request(channel)
    channel.requests.append(request)
    return channel, request


def test_a_released_upgrade_channel_is_freed_by_reference_counting(no_collector: None) -> None:
    channel, request = upgrade_channel()
    channel_ref, request_ref = weakref.ref(channel), weakref.ref(request)
    server.release_upgrade_channel(channel)
    del channel, request
    assert channel_ref() is None and request_ref() is None


def test_without_the_release_the_cycle_outlives_its_references(no_collector: None) -> None:
    """The test above would pass without ``release_upgrade_channel`` if there were no cycle: there is one."""
    channel, request = upgrade_channel()
    channel_ref = weakref.ref(channel)
    del channel, request
    assert channel_ref() is not None
    gc.collect()
    assert channel_ref() is None


class HttpChannelStandIn:
    """Registered as the transport's producer, as daphne's HTTP channel is when the WebSocket protocol takes over."""

    requests: list[Any]

    def __init__(self) -> None:
        self.requests = ["the upgrade request"]

    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...
    def stopProducing(self) -> None: ...


def test_the_websocket_protocol_releases_the_channel_it_was_upgraded_from_on_the_next_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    later: list[tuple[Any, ...]] = []
    factory = WebSocketFactory(type("Server", (), {"send_buffer_max_bytes": None}))
    factory.protocol = server.ReasonWebSocketProtocol
    monkeypatch.setattr(factory, "reactor", type("Reactor", (), {"callLater": lambda *a: later.append(a)})())
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    channel = HttpChannelStandIn()
    transport.registerProducer(channel, True)

    protocol.makeConnection(transport)

    assert channel.requests, "not while daphne's upgrade is still running"
    releases = [(delay, args) for _, delay, function, *args in later if function is server.release_upgrade_channel]
    assert releases == [(0, [channel])]
    server.release_upgrade_channel(*releases[0][1])
    assert channel.requests == []
