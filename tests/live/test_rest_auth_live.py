"""The REST socket's auth modes against real daphne processes on the Redis layer, with a real WebSocket client."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import InvalidStatus

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, EDITOR, StartServer

HANDSHAKE_FAILED = {
    "type": "auth",
    "status": "error",
    "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
}


def test_handshake_with_email_and_password_returns_a_refresh_token(start_server: StartServer) -> None:
    server = start_server()
    with JsonSocket(server.ws_url()) as ws:
        reply = ws.request({"type": "auth", "email": ADMIN[0], "password": ADMIN[1], "uid": "a"})
        assert list(reply) == ["type", "status", "refresh_token", "uid"]
        assert reply["type"] == "auth" and reply["status"] == "ok" and reply["uid"] == "a"
        assert len(reply["refresh_token"]) > 100
        assert ws.request({"type": "ping", "uid": 7}) == {"type": "pong", "uid": 7}


def test_handshake_with_an_access_token_replies_without_a_refresh_token(start_server: StartServer) -> None:
    server = start_server()
    tokens = server.login(*EDITOR)
    with JsonSocket(server.ws_url()) as ws:
        assert ws.request({"type": "auth", "access_token": tokens["access_token"]}) == {
            "type": "auth",
            "status": "ok",
        }
        assert ws.request({"type": "ping"}) == {"type": "pong"}


def test_handshake_with_a_refresh_token_rotates_it(start_server: StartServer) -> None:
    server = start_server()
    old = server.login(*EDITOR)["refresh_token"]
    with JsonSocket(server.ws_url()) as ws:
        reply = ws.request({"type": "auth", "refresh_token": old, "uid": "r"})
        assert reply["status"] == "ok" and reply["uid"] == "r"
        assert reply["refresh_token"] != old
    # The used refresh token is spent: HTTP refresh and a socket login with it are refused.
    status, body = server.post("/auth/refresh", {"refresh_token": old})
    assert status == 401
    assert body == {"errors": [{"message": "Invalid token.", "extensions": {"code": "INVALID_TOKEN"}}]}
    with JsonSocket(server.ws_url()) as ws:
        assert ws.request({"type": "auth", "refresh_token": old, "uid": "again"}) == {
            **HANDSHAKE_FAILED,
            "uid": "again",
        }
        assert ws.closed_with() == (4401, "Unauthorized")


def test_http_refresh_rotation_and_reuse_detection(start_server: StartServer) -> None:
    server = start_server()
    first = server.login(*ADMIN)
    status, body = server.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert status == 200
    second = body["data"]
    assert set(second) == {"access_token", "refresh_token", "expires"}
    assert second["refresh_token"] != first["refresh_token"]
    third = server.post("/auth/refresh", {"refresh_token": second["refresh_token"]})[1]["data"]
    # Replaying a spent token is refused and ends the session: its latest token stops working too.
    assert server.post("/auth/refresh", {"refresh_token": first["refresh_token"]})[0] == 401
    assert server.post("/auth/refresh", {"refresh_token": third["refresh_token"]})[0] == 401


def test_handshake_times_out_with_auth_failed_and_close_4401(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH_TIMEOUT="1")
    with JsonSocket(server.ws_url()) as ws:
        started = time.monotonic()
        assert ws.recv(timeout=5) == HANDSHAKE_FAILED
        assert time.monotonic() - started >= 0.9
        assert ws.closed_with() == (4401, "Unauthorized")


def test_handshake_refuses_a_non_auth_first_message(start_server: StartServer) -> None:
    server = start_server()
    with JsonSocket(server.ws_url()) as ws:
        assert ws.request({"type": "ping", "uid": "p"}) == {**HANDSHAKE_FAILED, "uid": "p"}
        assert ws.closed_with() == (4401, "Unauthorized")


def test_strict_mode_refuses_a_connection_without_a_token(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH="strict")
    with pytest.raises(InvalidStatus) as refused:
        JsonSocket(server.ws_url())
    assert refused.value.response.status_code == 403


def test_strict_mode_refuses_a_bad_token(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH="strict")
    with pytest.raises(InvalidStatus) as refused:
        JsonSocket(server.ws_url(access_token="not.a.jwt"))
    assert refused.value.response.status_code == 403


def test_strict_mode_with_a_good_token_answers_pings(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH="strict")
    token = server.login(*ADMIN)["access_token"]
    with JsonSocket(server.ws_url(access_token=token)) as ws:
        assert ws.request({"type": "ping", "uid": "s"}) == {"type": "pong", "uid": "s"}


def test_public_mode_answers_pings_and_switches_to_a_user(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH="public")
    with JsonSocket(server.ws_url()) as ws:
        assert ws.request({"type": "ping"}) == {"type": "pong"}
        reply = ws.request({"type": "auth", "email": ADMIN[0], "password": ADMIN[1]})
        assert reply["status"] == "ok" and "refresh_token" in reply
        assert ws.request({"type": "auth", "email": ADMIN[0], "password": "wrong", "uid": 3}) == {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "Authentication failed."},
            "uid": 3,
        }
        assert ws.request({"type": "ping"}) == {"type": "pong"}


def test_an_expired_token_is_restored_by_reauth(start_server: StartServer) -> None:
    server = start_server(ACCESS_TOKEN_TTL="2s", WEBSOCKETS_REST_AUTH_TIMEOUT="5")
    tokens = server.login(*EDITOR)
    with JsonSocket(server.ws_url()) as ws:
        assert ws.request({"type": "auth", "access_token": tokens["access_token"]})["status"] == "ok"
        assert ws.recv(timeout=5) == {
            "type": "auth",
            "status": "error",
            "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."},
        }
        reply = ws.request({"type": "auth", "refresh_token": tokens["refresh_token"], "uid": "re"})
        assert reply["status"] == "ok" and reply["uid"] == "re"
        assert ws.request({"type": "ping"}) == {"type": "pong"}
        # The renewed 2 s token expires too: the timer was re-armed from the new token's exp.
        assert ws.recv(timeout=5)["error"]["code"] == "TOKEN_EXPIRED"


def test_an_expired_token_without_reauth_times_out_and_closes_4401(start_server: StartServer) -> None:
    server = start_server(ACCESS_TOKEN_TTL="2s", WEBSOCKETS_REST_AUTH_TIMEOUT="1")
    token = server.login(*EDITOR)["access_token"]
    with JsonSocket(server.ws_url(access_token=token)) as ws:
        assert ws.recv(timeout=5)["error"]["code"] == "TOKEN_EXPIRED"
        assert ws.recv(timeout=5) == {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_TIMEOUT", "message": "Authentication timed out."},
        }
        assert ws.closed_with() == (4401, "Unauthorized")


def test_logout_on_one_process_revokes_the_sessions_sockets_on_another(start_server: StartServer) -> None:
    server, other = start_server(), start_server(WEBSOCKETS_REST_AUTH="public")
    tokens = server.login(*EDITOR)
    with JsonSocket(other.ws_url()) as ws:
        assert ws.request({"type": "auth", "access_token": tokens["access_token"]})["status"] == "ok"
        status, _ = server.post("/auth/logout", {"refresh_token": tokens["refresh_token"]})
        assert status == 204
        assert ws.recv(timeout=5)["error"]["code"] == "TOKEN_EXPIRED"
    # That session's access token no longer opens a socket.
    with pytest.raises(InvalidStatus) as refused:
        JsonSocket(server.ws_url(access_token=tokens["access_token"]))
    assert refused.value.response.status_code == 403


def test_a_message_over_the_size_limit_gets_an_error_and_close_4413(start_server: StartServer) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH="public", WEBSOCKETS_MESSAGE_MAX_BYTES="2048")
    with JsonSocket(server.ws_url()) as ws:
        assert ws.request({"type": "ping", "pad": "x" * 1500}) == {"type": "pong"}
        assert ws.request({"type": "ping", "pad": "x" * 3000}) == {
            "type": "server",
            "status": "error",
            "error": {"code": "INVALID_PAYLOAD", "message": "Message too large: over 2048 bytes."},
        }
        assert ws.closed_with() == (4413, "Message Too Large")
