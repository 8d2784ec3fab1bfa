"""The logs socket on real servers: lines of two daphne processes on one admin socket, redacted, within a second."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR, StartServer
from tests.live.harness import DaphneProcess


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
