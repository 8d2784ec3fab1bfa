"""``server.write_through``: a fan-out frame goes to the socket at once when nothing waits before it, and through
Twisted's buffer otherwise, with the bytes in order either way. On a real Twisted TCP connection (a socket pair, no
reactor turning): fails if Twisted changes the attributes the shortcut reads."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import reactor, tcp

from likha_realtime import server  # installs daphne's asyncio reactor first, as the server does


class Recorder:
    def makeConnection(self, transport: Any) -> None:  # Twisted's protocol interface
        self.transport = transport

    def connectionLost(self, reason: Any) -> None:
        pass


@pytest.fixture
def connection() -> Iterator[tuple[tcp.Server, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    transport = tcp.Server(ours, Recorder(), ("127.0.0.1", 1), None, 1, reactor)
    yield transport, peer
    transport.stopReading()
    transport.stopWriting()
    ours.close()
    peer.close()


def received(peer: socket.socket, size: int) -> bytes:
    peer.setblocking(False)
    chunks = b""
    while len(chunks) < size:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            break
        chunks += chunk
    return chunks


def test_nothing_buffered_the_frame_is_on_the_socket_at_once(connection: tuple[tcp.Server, socket.socket]) -> None:
    transport, peer = connection
    server.write_through(transport, b"frame-1")
    server.write_through(transport, b"frame-2")

    assert received(peer, 14) == b"frame-1frame-2"  # no reactor turn was needed
    assert not transport._tempDataBuffer and transport.dataBuffer == b""


def test_a_full_socket_buffer_sends_the_rest_through_twisted_in_order(
    connection: tuple[tcp.Server, socket.socket],
) -> None:
    transport, peer = connection
    big = bytes(range(256)) * 8192  # 2 MiB: more than the socket pair's buffers take
    server.write_through(transport, big)
    assert transport._tempDataLen > 0  # the kernel took part of it: Twisted holds the rest
    server.write_through(transport, b"after")  # waits behind it, never overtakes
    assert transport._tempDataBuffer[-1] == b"after"

    data = b""
    while len(data) < len(big) + 5:  # the reactor's part, turned by hand: send what the peer has room for
        data += received(peer, len(big) + 5 - len(data))
        transport.doWrite()
    assert data == big + b"after"


def test_tls_or_a_closing_connection_takes_twisted_own_path(connection: tuple[tcp.Server, socket.socket]) -> None:
    transport, peer = connection
    transport.disconnecting = True
    server.write_through(transport, b"late")
    assert received(peer, 4) == b""  # not sent at once: Twisted decides what a closing connection still sends


def test_autobahns_connection_settings_log_line_is_formatted_only_when_asked_for() -> None:
    """autobahn formats ~40 settings with ``pformat`` for a debug line on every new connection; the server makes that
    lazy. Fails if autobahn no longer calls it so (then the shortcut is dead code)."""
    import inspect

    from autobahn.websocket import protocol

    assert "pformat(configAttrLog)" in inspect.getsource(protocol.WebSocketProtocol._connectionMade)
    assert protocol.pformat is server._pformat
    assert server._CONNECTION_MADE is protocol.WebSocketProtocol._connectionMade.__code__
    assert str(server.LazyPformat([("a", 1)])) == "[('a', 1)]"
    # Every other caller gets the text itself: autobahn's Timings.__str__ returns it.
    assert protocol.pformat([("a", 1)]) == "[('a', 1)]"
    assert isinstance(str(protocol.Timings()), str)


class DaphneServer:
    """What daphne's ``WebSocketProtocol.onClose`` asks of its server."""

    send_buffer_max_bytes = 8 * 1024 * 1024

    def __init__(self) -> None:
        self.disconnected: list[Any] = []

    def protocol_disconnected(self, protocol: Any) -> None:
        self.disconnected.append(protocol)

    def log_action(self, *args: Any) -> None:
        pass


def test_a_lost_connection_releases_what_it_still_had_to_send() -> None:
    """A slow reader's connection, dropped, still held its unsent bytes on the transport object (Twisted never
    clears them) until the garbage collector freed the protocol: ``connectionLost`` lets go of them at once."""
    from daphne.ws_protocol import WebSocketFactory
    from twisted.internet import error
    from twisted.python import failure

    daphne_server = DaphneServer()
    factory = WebSocketFactory(daphne_server)
    factory.protocol = server.ReasonWebSocketProtocol
    protocol = factory.buildProtocol(None)
    protocol.server, protocol.client_addr = daphne_server, ["203.0.113.9", 5555]  # set by daphne
    protocol.request = type("Request", (), {"path": b"/websockets"})()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    transport = tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, reactor)
    try:
        protocol.makeConnection(transport)
        protocol.state, protocol.websocket_version = protocol.STATE_OPEN, 13
        protocol.sendMessage(b"x" * (4 * 1024 * 1024))  # more than the socket pair takes: Twisted holds the rest
        assert transport._tempDataLen + len(transport.dataBuffer) - transport.offset > 1024 * 1024

        transport.connectionLost(failure.Failure(error.ConnectionAborted()))  # the close handshake timed out

        assert daphne_server.disconnected == [protocol]  # daphne's own handling ran
        assert transport.dataBuffer == b"" and transport._tempDataBuffer == [] and transport._tempDataLen == 0
        assert not protocol.send_queue
    finally:
        transport.stopReading()
        transport.stopWriting()
        peer.close()
