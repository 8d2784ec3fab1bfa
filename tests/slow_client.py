"""A WebSocket client that never reads: a raw socket with a small receive buffer, for the slow-reader tests.

The ``websockets`` client reads in a background thread whatever the test does, so it cannot stop reading; this one
does the opening handshake by hand, sends masked text frames, reads a frame only when told to, and otherwise only
looks at whether the server has dropped the TCP connection (without reading what the server sent).
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import struct
import threading

RECEIVE_BUFFER = 4096  # bytes the kernel may hold for us (it rounds it up a little)
TCP_ESTABLISHED = 1  # linux/tcp_states.h


class NonReadingClient:
    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/",
        receive_buffer: int | None = RECEIVE_BUFFER,
        subprotocol: str | None = None,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connect: the window advertised in the handshake follows it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                + (f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else "")
                + "\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:  # the handshake answer only: nothing after it is read
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            response += chunk
        status = response.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"handshake refused: {status!r}")

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_text(self) -> str:
        """Read exactly one (small, unfragmented) text frame from the server, e.g. to know a subscription started;
        nothing after it is read."""
        first, second = self._recv_exactly(2)
        assert first == 0x81, f"expected a final text frame, got opcode byte {first:#x}"
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._recv_exactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._recv_exactly(8))[0]
        return self._recv_exactly(size).decode()

    def _recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk
        return data

    def tcp_state(self) -> int:
        """The kernel's TCP state of this socket (Linux ``TCP_INFO``), read without consuming anything."""
        return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]

    def dropped(self) -> bool:
        """Whether the server has ended the TCP connection (reset, or closed its side), unread bytes unread."""
        return self.tcp_state() != TCP_ESTABLISHED

    def close(self) -> None:
        self.sock.close()


class Drainer:
    """Reads (and discards) everything the server sends on some sockets, on a thread: clients that keep up."""

    def __init__(self, clients: list[NonReadingClient]) -> None:
        self.selector = selectors.DefaultSelector()
        for client in clients:
            client.sock.setblocking(False)
            self.selector.register(client.sock, selectors.EVENT_READ)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(sock)
                self.received += len(data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.selector.close()
