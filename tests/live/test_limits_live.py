"""Limits on a real daphne with a real client (``websockets``).

``MESSAGE_MAX_BYTES``: on every socket a message over the limit is answered (REST and logs: the error frame;
GraphQL: nothing, its clients know only close codes) and closed 4413 — whatever its size, its framing or its kind —
never reset by the transport. The message rate: refused with the wait, the socket open; advertised in /server/info.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import DaphneProcess

MIB = 1024 * 1024
LIMIT = MIB  # the default, as `make run` serves it
TOO_LARGE = {
    "type": "server",
    "status": "error",
    "error": {"code": "INVALID_PAYLOAD", "message": f"Message too large: over {LIMIT} bytes."},
}
# Just over the limit (the reported case), past the old transport cut (4 x the limit) and far past it.
SIZES = [LIMIT + 100, 4 * LIMIT + 100, 12 * MIB]


RATE = 5  # messages per connection in RATE_SECONDS (the size tests send at most 2 per connection)
RATE_SECONDS = 60


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> DaphneProcess:
    return start_server(
        WEBSOCKETS_REST_AUTH="public",
        WEBSOCKETS_GRAPHQL_AUTH="public",
        WEBSOCKETS_MESSAGE_RATE_POINTS=str(RATE),
        WEBSOCKETS_MESSAGE_RATE_DURATION=str(RATE_SECONDS),
    )


def ping_of(size: int) -> str:
    """A REST/logs ``ping`` message of ``size`` bytes."""
    head = '{"type":"ping","uid":"big","pad":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def received_until_close(conn: ClientConnection, timeout: float = 20) -> tuple[list[Any], tuple[int, str] | None]:
    """Every frame the server sent, then its close (``None``: the connection ended without one, e.g. a reset)."""
    frames: list[Any] = []
    try:
        while True:
            frames.append(json.loads(conn.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return frames, None if closed.rcvd is None else (closed.rcvd.code, closed.rcvd.reason)


@pytest.fixture
def rest(server: DaphneProcess) -> Iterator[ClientConnection]:
    with connect(server.ws_url(), open_timeout=10, close_timeout=10, proxy=None) as conn:
        yield conn


@pytest.mark.parametrize("size", SIZES)
def test_the_rest_socket_answers_an_oversized_message_and_closes_4413(rest: ClientConnection, size: int) -> None:
    rest.send(ping_of(size))
    assert received_until_close(rest) == ([TOO_LARGE], (4413, "Message Too Large"))


def test_the_limit_itself_passes_on_the_rest_socket(rest: ClientConnection) -> None:
    rest.send(ping_of(LIMIT))
    assert json.loads(rest.recv(timeout=10)) == {"type": "pong", "uid": "big"}


def test_a_fragmented_message_over_the_limit_closes_4413(rest: ClientConnection) -> None:
    # 64 KiB fragments: no single frame is over the limit, the message is.
    text = ping_of(2 * LIMIT)
    rest.send(text[i : i + 65536] for i in range(0, len(text), 65536))
    assert received_until_close(rest) == ([TOO_LARGE], (4413, "Message Too Large"))


def test_a_binary_message_over_the_limit_closes_4413(rest: ClientConnection) -> None:
    rest.send(b"\xff" * (2 * LIMIT))  # not even UTF-8: the size is what is answered
    assert received_until_close(rest) == ([TOO_LARGE], (4413, "Message Too Large"))


def test_the_messages_before_an_oversized_one_are_answered_first(rest: ClientConnection) -> None:
    rest.send(json.dumps({"type": "ping", "uid": 1}))
    rest.send(ping_of(4 * LIMIT + 100))
    assert received_until_close(rest) == ([{"type": "pong", "uid": 1}, TOO_LARGE], (4413, "Message Too Large"))


@pytest.mark.parametrize("size", [LIMIT + 100, 12 * MIB])
def test_the_logs_socket_answers_an_oversized_message_and_closes_4413(server: DaphneProcess, size: int) -> None:
    token = server.login(*ADMIN)["access_token"]
    with connect(server.ws_url("/websockets/logs", access_token=token), open_timeout=10, proxy=None) as conn:
        conn.send(json.dumps({"type": "ping", "uid": 1}))
        assert json.loads(conn.recv(timeout=10)) == {"type": "pong", "uid": 1}  # authenticated and open
        conn.send(ping_of(size))
        assert received_until_close(conn) == ([TOO_LARGE], (4413, "Message Too Large"))


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize("size", [LIMIT + 100, 3_000_000, 12 * MIB])
def test_the_graphql_socket_closes_an_oversized_message_4413(
    server: DaphneProcess, subprotocol: str, size: int
) -> None:
    with connect(server.ws_url("/graphql"), subprotocols=[subprotocol], open_timeout=10, proxy=None) as conn:
        conn.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(conn.recv(timeout=10)) == {"type": "connection_ack"}
        head = '{"type":"ping","payload":{"pad":"'
        conn.send(head + "x" * (size - len(head) - 3) + '"}}')
        # graphql-ws clients know only close codes: no frame, the close says it.
        assert received_until_close(conn) == ([], (4413, "Message Too Large"))


# -- message rate -------------------------------------------------------------------------------------------------

RETRY = re.compile(r"Too many messages, retry after (\d+)ms\.")


def retry_ms(message: str) -> int:
    found = RETRY.fullmatch(message)
    assert found, message
    return int(found.group(1))


def test_over_the_rate_messages_are_refused_with_the_wait_and_the_socket_stays_open(rest: ClientConnection) -> None:
    for uid in range(RATE + 2):  # a burst, as an SDK sends at start-up
        rest.send(json.dumps({"type": "ping", "uid": uid}))
    replies = [json.loads(rest.recv(timeout=10)) for _ in range(RATE + 2)]
    assert replies[:RATE] == [{"type": "pong", "uid": uid} for uid in range(RATE)]
    for uid, reply in zip((RATE, RATE + 1), replies[RATE:], strict=True):
        assert (reply["type"], reply["status"], reply["error"]["code"], reply["uid"]) == (
            "server",
            "error",
            "REQUESTS_EXCEEDED",
            uid,
        )
        assert 0 < retry_ms(reply["error"]["message"]) <= RATE_SECONDS / RATE * 1000
    rest.send(json.dumps({"type": "pong"}))  # free, and answered by nothing
    rest.close(code=1000)  # the close handshake completes: the server had kept the socket open
    assert rest.close_code == 1000


def test_graphql_operations_over_the_rate_get_an_error_for_their_id(server: DaphneProcess) -> None:
    with connect(server.ws_url("/graphql"), subprotocols=["graphql-transport-ws"], open_timeout=10, proxy=None) as conn:
        conn.send(json.dumps({"type": "connection_init", "payload": {}}))  # unmetered
        assert json.loads(conn.recv(timeout=10)) == {"type": "connection_ack"}
        subscribe = "subscription { products_mutated { key } }"
        for n in range(RATE + 1):
            conn.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": subscribe}}))
        refusal = json.loads(conn.recv(timeout=10))  # the subscriptions answer nothing until an event
        assert (refusal["id"], refusal["type"], refusal["payload"][0]["extensions"]) == (
            str(RATE),
            "error",
            {"code": "REQUESTS_EXCEEDED"},
        )
        assert 0 < retry_ms(refusal["payload"][0]["message"]) <= RATE_SECONDS / RATE * 1000


def test_server_info_advertises_the_rate(server: DaphneProcess) -> None:
    with urllib.request.urlopen(server.http + "/server/info", timeout=10) as response:
        data = json.loads(response.read())["data"]
    assert data["rateLimit"] == {"points": RATE, "duration": RATE_SECONDS}
    assert data["websocket"]["limits"]["messages"] == {"points": RATE, "duration": RATE_SECONDS}
