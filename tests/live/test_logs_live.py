"""The logs socket on real servers: lines of two daphne processes on one admin socket, redacted, within a second."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import DaphneProcess
from tests.support import wait_until


@pytest.fixture(scope="module")
def pair(start_server: StartServer) -> tuple[DaphneProcess, DaphneProcess]:
    return start_server(), start_server(WEBSOCKETS_REST_AUTH="public")


def get(server: DaphneProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(server.http + path, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_for_line(ws: JsonSocket, text: str, seen: list[dict[str, Any]], timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        seen.append(frame)
        if frame.get("data", {}).get("msg", "").startswith(text):
            return frame
    raise AssertionError(f"no line starting with {text!r}; got {[f.get('data', {}).get('msg') for f in seen]}")


def test_an_admin_on_a_sees_request_lines_of_both_processes(pair: tuple[DaphneProcess, DaphneProcess]) -> None:
    a, b = pair
    token = a.login(*ADMIN)["access_token"]
    seen: list[dict[str, Any]] = []
    with JsonSocket(a.ws_url("/websockets/logs", access_token=token)) as ws:
        assert ws.request({"type": "subscribe", "log_level": "info"}) == {
            "type": "logs",
            "event": "subscribe",
            "log_level": "info",
        }
        started = time.monotonic()
        assert get(a, "/server/info?from=a") == 200
        on_a = wait_for_line(ws, "GET /server/info 200 ", seen)
        assert time.monotonic() - started < 1, "the request line took over a second"
        assert get(b, "/server/info?from=b") == 200
        on_b = wait_for_line(ws, "GET /server/info 200 ", seen)
    assert on_a["type"] == on_b["type"] == "logs" and on_a["data"]["level"] == 30
    assert on_a["uid"] != on_b["uid"] and len(on_a["uid"]) == len(on_b["uid"]) == 32


def test_streamed_lines_carry_no_token_or_password(pair: tuple[DaphneProcess, DaphneProcess]) -> None:
    a, b = pair
    token = a.login(*ADMIN)["access_token"]
    secret = b.login(*EDITOR)["access_token"]
    seen: list[dict[str, Any]] = []
    with JsonSocket(a.ws_url("/websockets/logs", access_token=token)) as ws:
        ws.request({"type": "subscribe", "log_level": "info"})
        assert get(b, f"/no-such-page/{secret}") == 404
        assert get(b, "/no-such-page/password=hunter2secret") == 404
        first = wait_for_line(ws, "GET /no-such-page/[REDACTED] 404 ", seen)
        second = wait_for_line(ws, "GET /no-such-page/password=[REDACTED] 404 ", seen)
        ws.request({"type": "unsubscribe"})
    text = repr(seen)
    assert secret not in text and secret.split(".")[1] not in text and "hunter2secret" not in text
    assert first["uid"] == second["uid"]


def test_an_editor_is_refused_with_4403(pair: tuple[DaphneProcess, DaphneProcess]) -> None:
    a, _ = pair
    token = a.login(*EDITOR)["access_token"]
    with JsonSocket(a.ws_url("/websockets/logs", access_token=token)) as ws:
        assert ws.recv() == {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "Unauthorized access."},
        }
        assert ws.closed_with() == (4403, "Forbidden")


def test_an_accepted_strict_socket_never_logs_its_url_token(start_server: StartServer) -> None:
    """A strict-mode socket opened with ``?access_token=…`` and used: no line of the server's output (daphne's access
    log and every logger of ours, at debug) and no line streamed to the logs socket carries the token."""
    server = start_server(WEBSOCKETS_REST_AUTH="strict", LOG_LEVEL="debug", WEBSOCKETS_LOGS_LEVEL="debug")
    admin = server.login(*ADMIN)["access_token"]
    token = server.login(*EDITOR)["access_token"]
    seen: list[dict[str, Any]] = []
    with JsonSocket(server.ws_url("/websockets/logs", access_token=admin)) as logs:
        assert logs.request({"type": "subscribe", "log_level": "debug"})["event"] == "subscribe"
        with JsonSocket(server.ws_url("/websockets", access_token=token)) as ws:  # accepted: the token is good
            assert ws.request({"type": "ping", "uid": "s"}) == {"type": "pong", "uid": "s"}
            init = ws.request({"type": "subscribe", "collection": "products", "query": {"limit": 1}, "uid": "p"})
            assert (init["type"], init["event"], init["uid"]) == ("subscription", "init", "p")
        # daphne writes the closed socket's access line; a request after it marks the end of the stream's lines.
        wait_until(lambda: '"WSDISCONNECT /websockets"' in server.log(), 10, "no WSDISCONNECT line for the socket")
        assert get(server, "/server/info?after=strict-socket") == 200
        wait_for_line(logs, "GET /server/info 200 ", seen, timeout=10)
    output = server.log()
    for line in ('"WSCONNECTING /websockets"', '"WSCONNECT /websockets"', '"WSDISCONNECT /websockets"'):
        assert output.count(line) == 1, output  # the strict socket's own access lines
    streamed = repr(seen)
    for secret in (token, admin, *token.split(".")[1:], *admin.split(".")[1:]):  # the payloads and signatures
        assert secret not in output
        assert secret not in streamed
    assert set(re.findall(r"access_token=([^&\s\"']*)", output + streamed)) <= {"[REDACTED]"}
