"""A small JSON client over a real WebSocket connection (the ``websockets`` library), for live tests."""

from __future__ import annotations

import json
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class JsonSocket:
    def __init__(self, url: str, **kwargs: Any) -> None:
        self._manager = connect(url, open_timeout=10, close_timeout=5, proxy=None, **kwargs)
        self.conn: ClientConnection = self._manager.__enter__()

    def send(self, frame: dict[str, Any] | str) -> None:
        self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv(self, timeout: float = 5) -> dict[str, Any]:
        return json.loads(self.conn.recv(timeout=timeout))

    def recv_or_none(self, timeout: float) -> dict[str, Any] | None:
        """The next frame, or ``None`` when none arrives within ``timeout`` seconds."""
        try:
            return self.recv(timeout)
        except TimeoutError:
            return None

    def request(self, frame: dict[str, Any], timeout: float = 5) -> dict[str, Any]:
        self.send(frame)
        return self.recv(timeout)

    def closed_with(self, timeout: float = 5) -> tuple[int, str]:
        """Wait for the server to close; returns (code, reason). Fails if a frame arrives instead."""
        try:
            frame = self.conn.recv(timeout=timeout)
        except ConnectionClosed as closed:
            received = closed.rcvd
        else:
            raise AssertionError(f"expected a close, received {frame!r}")
        assert received is not None, "connection dropped without a close frame"
        return received.code, received.reason

    def close(self) -> None:
        self._manager.__exit__(None, None, None)

    def __enter__(self) -> JsonSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
