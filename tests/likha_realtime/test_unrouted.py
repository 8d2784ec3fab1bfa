"""A WebSocket handshake to a path where no socket is: refused (HTTP 403) with one INFO line, never a 500 with a
traceback (hostile review of issue 10)."""

from __future__ import annotations

import logging

import pytest
from channels.testing import WebsocketCommunicator

from likha_realtime.routing import websocket_application
from tests.likha_realtime.support import FRAME_WAIT


@pytest.mark.parametrize("path", ["/nope", "/websockets/", "/WEBSOCKETS", "/graphql/", "/websockets/logs%0AFORGED"])
async def test_a_path_without_a_socket_is_refused_before_accept(path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    comm = WebsocketCommunicator(websocket_application(), path)
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output(timeout=FRAME_WAIT) == {"type": "websocket.close"}
    await comm.wait(timeout=FRAME_WAIT)
    shown = path.replace("%0A", "\\n")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "likha_realtime.routing",
            logging.INFO,
            f"WebSocket handshake to {shown} refused (HTTP 403): no socket at this path",
        )
    ]
