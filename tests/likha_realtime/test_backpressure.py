"""Slow readers: the accounting (``likha_realtime.backpressure``) and the server protocol that applies it, driven
through Twisted's test transport as the TCP transport drives it (``pauseProducing`` / ``resumeProducing``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.testing import StringTransport

from likha_realtime.backpressure import Backlog, SendBuffer, text_size
from likha_realtime.events.stats import stats
from likha_realtime.graphql.schema import Listener
from likha_realtime.server import ReasonWebSocketProtocol
from likha_realtime.sockets.rest import RestConsumer
from tests.likha_realtime.support import realtime

LIMIT = 1000
CLOSE_4429 = b"\x88\x13\x11\x4dToo Many Requests"  # FIN+close, 19-byte payload: code 4429, then the reason


# -- the accounting ----------------------------------------------------------------------------------------------


def test_text_size_is_the_utf8_length() -> None:
    assert text_size("abc") == 3
    assert text_size("é€𝄞") == 2 + 3 + 4


def test_a_buffer_the_transport_has_not_paused_admits_anything() -> None:
    buffer = SendBuffer(LIMIT)
    assert buffer.admits(50 * LIMIT)
    buffer.written(50 * LIMIT, while_paused=False)
    assert buffer.pending == 0 and not buffer.overflowed


def test_while_paused_writes_count_up_to_the_limit_and_the_message_beyond_it_is_refused() -> None:
    buffer = SendBuffer(LIMIT)
    buffer.pause()
    assert buffer.admits(600)
    buffer.written(600, while_paused=True)
    assert buffer.admits(400)
    buffer.written(400, while_paused=True)
    assert buffer.pending == LIMIT and not buffer.over
    assert not buffer.admits(1)
    assert buffer.overflowed
    assert not buffer.admits(0), "once overflowed, nothing more is admitted"


def test_the_write_that_fills_the_buffer_is_not_counted_and_an_emptied_buffer_starts_again() -> None:
    buffer = SendBuffer(LIMIT)
    buffer.written(5 * LIMIT, while_paused=False)  # the transport paused us during this write
    buffer.pause()
    assert buffer.pending == 0
    buffer.written(900, while_paused=True)
    buffer.resume()  # the transport's buffer is empty
    assert buffer.pending == 0 and not buffer.paused
    buffer.pause()
    assert buffer.admits(LIMIT)


def test_control_frames_written_while_paused_can_take_the_buffer_over() -> None:
    buffer = SendBuffer(LIMIT)
    buffer.pause()
    for _ in range(9):
        buffer.written(125, while_paused=True)
    assert buffer.over and not buffer.overflowed


def test_a_backlog_admits_up_to_its_limit_and_a_single_large_frame_when_empty() -> None:
    held = Backlog(LIMIT)
    assert held.add(5 * LIMIT), "a single frame passes when nothing is held"
    assert not held.add(1)
    held.remove(5 * LIMIT)
    assert held.size == 0
    assert held.add(700) and held.add(300)
    assert not held.add(1)
    assert held.size == LIMIT
    held.clear()
    assert held.size == 0 and held.add(1)


# -- the protocol --------------------------------------------------------------------------------------------------


class HttpChannel:
    """Stands for twisted.web's HTTPChannel, which registers itself as the transport's producer and stays so."""

    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...
    def stopProducing(self) -> None: ...


def open_protocol(
    limit: int | None = LIMIT, close_timeout: float = 1
) -> tuple[ReasonWebSocketProtocol, StringTransport]:
    server = type("Server", (), {"send_buffer_max_bytes": limit})
    factory = WebSocketFactory(server)
    factory.protocol = ReasonWebSocketProtocol
    factory.setProtocolOptions(closeHandshakeTimeout=close_timeout)
    protocol: ReasonWebSocketProtocol = factory.buildProtocol(None)
    protocol.client_addr, protocol.path = ["203.0.113.9", 5555], b"/websockets"  # set by daphne's onConnect
    transport = StringTransport()
    transport.registerProducer(HttpChannel(), True)
    protocol.makeConnection(transport)
    # The opening handshake's outcome, as autobahn leaves it (the handshake itself is daphne's and autobahn's).
    protocol.state, protocol.websocket_version = protocol.STATE_OPEN, 13
    transport.clear()
    return protocol, transport


def send(protocol: ReasonWebSocketProtocol, text: str) -> None:
    protocol.handle_reply({"type": "websocket.send", "text": text})


def text_frame(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, len(data)]) + data


@pytest.fixture(autouse=True)
def clean_stats() -> Any:
    stats.reset()
    yield
    stats.reset()


def test_the_protocol_replaces_the_http_channel_as_its_transports_streaming_producer() -> None:
    protocol, transport = open_protocol()
    assert transport.producer is protocol and transport.streaming
    assert protocol.send_buffer is not None and protocol.send_buffer.limit == LIMIT


def test_without_a_limit_nothing_is_registered_and_nothing_is_bounded() -> None:
    protocol, transport = open_protocol(limit=None)
    assert protocol.send_buffer is None
    assert isinstance(transport.producer, HttpChannel)
    protocol.pauseProducing()
    for _ in range(30):
        send(protocol, "x" * 100)
    assert not protocol.slow_reader_closed
    assert transport.value() == text_frame("x" * 100) * 30


def test_a_client_that_keeps_up_is_sent_everything() -> None:
    protocol, transport = open_protocol()
    for _ in range(30):  # 3 x the limit, the buffer emptied in between
        protocol.pauseProducing()
        send(protocol, "x" * 100)
        protocol.resumeProducing()
    assert transport.value() == text_frame("x" * 100) * 30
    assert not protocol.slow_reader_closed and stats.slow_readers_closed == 0


def test_an_overflowing_socket_sends_nothing_more_and_closes_4429_once(caplog: pytest.LogCaptureFixture) -> None:
    protocol, transport = open_protocol()
    protocol.pauseProducing()
    for _ in range(9):
        send(protocol, "x" * 100)  # 9 x 102 bytes on the wire: 918 waiting
    assert transport.value() == text_frame("x" * 100) * 9
    transport.clear()
    with caplog.at_level(logging.INFO, logger="likha_realtime.backpressure"):
        send(protocol, "y" * 100)  # 918 + 100 > 1000: not sent
        send(protocol, "z")
        protocol.handle_reply({"type": "websocket.close", "code": 1000})
    assert transport.value() == CLOSE_4429, "the close frame only: neither message nor the application's own close"
    assert protocol.slow_reader_closed and protocol.state == protocol.STATE_CLOSING
    assert stats.slow_readers_closed == 1
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "slow reader closed 4429 (path /websockets): 1018 bytes waiting would exceed "
            "SEND_BUFFER_MAX_BYTES=1000 (client 203.0.113.9:5555)",
        )
    ]


def test_a_buffer_emptied_in_time_lets_the_same_amount_through_again() -> None:
    protocol, transport = open_protocol()
    protocol.pauseProducing()
    for _ in range(9):
        send(protocol, "x" * 100)
    protocol.resumeProducing()
    protocol.pauseProducing()
    for _ in range(9):
        send(protocol, "x" * 100)
    assert transport.value() == text_frame("x" * 100) * 18
    assert not protocol.slow_reader_closed


def test_the_connection_is_aborted_when_the_client_does_not_answer_the_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """autobahn's close handshake timeout drops the connection with an abort (the buffered bytes are released)."""
    protocol, transport = open_protocol()
    protocol.pauseProducing()
    send(protocol, "x" * (LIMIT + 1))
    assert protocol.closeHandshakeTimeoutCall is not None
    protocol.closeHandshakeTimeoutCall.cancel()
    protocol.onCloseHandshakeTimeout()  # what the timer calls
    assert transport.disconnected, "aborted (StringTransport.abortConnection sets disconnected)"
    assert protocol.state == protocol.STATE_CLOSED


def test_without_a_close_handshake_timeout_the_connection_is_aborted_at_once() -> None:
    protocol, transport = open_protocol(close_timeout=0)
    protocol.pauseProducing()
    send(protocol, "x" * (LIMIT + 1))
    assert transport.value() == CLOSE_4429
    assert transport.disconnected and protocol.state == protocol.STATE_CLOSED


def test_pongs_that_take_a_paused_buffer_over_the_limit_close_it_on_the_next_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protocol, transport = open_protocol()
    later: list[tuple[Any, ...]] = []
    monkeypatch.setattr(protocol.factory, "reactor", type("Reactor", (), {"callLater": lambda *a: later.append(a)})())
    protocol.pauseProducing()
    for _ in range(9):
        protocol.sendPong(b"p" * 125)
    assert not protocol.slow_reader_closed and len(later) == 1
    _, delay, close, *args = later[0]
    assert delay == 0
    close(*args)
    assert protocol.slow_reader_closed and transport.value().endswith(CLOSE_4429)
    assert stats.slow_readers_closed == 1


# -- the consumers' own queues -------------------------------------------------------------------------------------


class FakeSubscription:
    def frame_text(self, action: str, data_json: str) -> str:
        return f'{{"type":"subscription","event":"{action}","data":{data_json}}}'


class Closes:
    """Stands for ``RealtimeSocket.close_with`` on a consumer built without a connection."""

    def __init__(self, socket: Any) -> None:
        self.socket, self.codes = socket, []

    async def __call__(self, code: Any) -> None:
        self.codes.append(int(code))
        self.socket._closing = True


async def test_frames_held_for_the_auth_lock_beyond_the_limit_close_the_rest_socket_4429(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with realtime(SEND_BUFFER_MAX_BYTES=64 * 1024):
        consumer = RestConsumer()
    consumer._auth_lock = asyncio.Lock()
    closes = consumer.close_with = Closes(consumer)  # type: ignore[method-assign]
    subscription = FakeSubscription()
    consumer.subscriptions = {"s": subscription}  # type: ignore[dict-item]
    data = "[" + "1" * 10_000 + "]"  # frames of ~10 KB
    async with consumer._auth_lock:  # a login or a long message: frames wait
        for _ in range(6):
            await consumer.receive_event(subscription, "update", None, data)  # type: ignore[arg-type]
        assert closes.codes == [] and consumer._held.size == 6 * len(subscription.frame_text("update", data))
        with caplog.at_level(logging.INFO, logger="likha_realtime.backpressure"):
            for _ in range(4):  # the 7th takes the held bytes over 64 KiB
                await consumer.receive_event(subscription, "update", None, data)  # type: ignore[arg-type]
    assert closes.codes == [4429]
    assert not consumer._held_frames and consumer._held.size == 0, "what it held is dropped"
    assert stats.slow_readers_closed == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"slow reader closed 4429 (rest socket, frames held for the auth lock): "
        f"{7 * len(subscription.frame_text('update', data))} bytes waiting would exceed SEND_BUFFER_MAX_BYTES=65536"
    ]
    if consumer._release_task is not None:
        consumer._release_task.cancel()


async def test_a_graphql_socket_whose_subscriptions_queue_too_much_is_closed_4429_not_a_queue_error() -> None:
    class Socket:
        socket = "graphql"
        _closing = False
        held_events = Backlog(64 * 1024)

        def unlisten(self, listener: Any) -> None: ...

    socket = Socket()
    closes = Closes(socket)
    socket.close_with = closes  # type: ignore[attr-defined]
    first, second = Listener("products", socket, None), Listener("customers", socket, None)
    data = "[" + "1" * 20_000 + "]"
    for listener in (first, second, first):  # ~60 KB queued by the socket's subscriptions together
        await listener.receive_event(None, "update", [1], data)  # type: ignore[arg-type]
    assert closes.codes == [] and socket.held_events.size == 3 * len(data)
    await second.receive_event(None, "update", [1], data)  # type: ignore[arg-type]
    assert closes.codes == [4429] and stats.slow_readers_closed == 1
    assert first.queue.qsize() == 2 and second.queue.qsize() == 1, "the event over the limit was not queued"
    first.end()  # what an ended listener held is released
    assert socket.held_events.size == len(data)
    second.stop()  # and what a stopped one held (its operation completed, or the socket is gone)
    assert socket.held_events.size == 0


async def test_a_full_listener_queue_closes_its_socket_too() -> None:
    class Socket:
        socket = "graphql"
        _closing = False
        held_events = Backlog(1 << 30)

    socket = Socket()
    closes = Closes(socket)
    socket.close_with = closes  # type: ignore[attr-defined]
    listener = Listener("products", socket, None)
    listener.queue = asyncio.Queue(maxsize=2)
    for _ in range(3):
        await listener.receive_event(None, "delete", [1], "[1]")  # type: ignore[arg-type]
    assert closes.codes == [4429] and listener.queue.qsize() == 2
