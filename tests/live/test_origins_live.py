"""Origins and Host on the real server: daphne answers a refused handshake with HTTP 403, on all three sockets
(likha_realtime.origins; the browser's view is tests/live/test_browser_live.py)."""

from __future__ import annotations

import socket

import pytest
from websockets.exceptions import InvalidStatus

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import DaphneProcess

PATHS = ["/websockets", "/graphql", "/websockets/logs"]
SUBPROTOCOLS = {"/graphql": ["graphql-transport-ws"]}
ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> DaphneProcess:
    return start_server(WEBSOCKETS_ALLOWED_ORIGINS=ALLOWED)


def status_of(url: str, path: str, **kwargs: object) -> int:
    """101 when the handshake is accepted, else the HTTP status of the refusal."""
    try:
        with JsonSocket(url, subprotocols=SUBPROTOCOLS.get(path), **kwargs):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("path", PATHS)
def test_a_listed_origin_and_no_origin_connect_others_get_403(server: DaphneProcess, path: str) -> None:
    url = server.ws_url(path)
    assert status_of(url, path, origin=ALLOWED) == 101
    assert status_of(url, path) == 101  # not a browser: no Origin header
    assert status_of(url, path, origin="https://evil.example") == 403
    assert status_of(url, path, origin="http://127.0.0.1:1") == 403
    assert status_of(url, path, origin=f"http://127.0.0.1:{server.port}") == 101  # the site itself


@pytest.mark.parametrize("path", PATHS)
def test_a_host_outside_allowed_hosts_gets_403(server: DaphneProcess, path: str) -> None:
    # What a DNS-rebinding page sends: the server's address under another name, in Host.
    def connect_as(host: str) -> int:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            return status_of(f"ws://{host}:{server.port}{path}", path, sock=sock)
        finally:
            sock.close()

    assert connect_as("evil.example") == 403
    assert connect_as("localhost") == 101


def test_the_refusal_is_logged_without_the_token(server: DaphneProcess) -> None:
    token = server.login(*ADMIN)["access_token"]
    assert status_of(server.ws_url("/websockets", access_token=token), "/websockets", origin="https://x.example") == 403
    log = server.log()
    assert (
        "WebSocket handshake to /websockets refused (HTTP 403): origin 'https://x.example' is not allowed "
        "(WEBSOCKETS_ALLOWED_ORIGINS)" in log
    )
    assert token not in log
