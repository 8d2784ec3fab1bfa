"""``<SOCKET>_CONN_LIMIT`` is honoured by every socket it names: over the limit, the error (where the protocol has
error frames) and close 4429; a closed connection frees its place."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from likha_realtime.graphql.schema import get_schema
from likha_realtime.sockets.base import RealtimeSocket
from likha_realtime.sockets.graphql import GraphQLConsumer
from likha_realtime.sockets.logs import LogsConsumer
from likha_realtime.sockets.rest import RestConsumer

pytestmark = pytest.mark.django_db(transaction=True)

SOCKETS = {
    "rest": ("/websockets", lambda: RestConsumer.as_asgi(), []),
    "logs": ("/websockets/logs", lambda: LogsConsumer.as_asgi(), []),
    "graphql": ("/graphql", lambda: GraphQLConsumer.as_asgi(schema=get_schema()), ["graphql-transport-ws"]),
}


def limited(socket: str, **values: Any) -> override_settings:
    """Public mode (no auth needed to stay open) and a limit of one more connection than this process has now."""
    key = socket.upper()
    limit = RealtimeSocket.open_connections[socket] + 1
    return override_settings(
        LIKHA_REALTIME={
            **settings.LIKHA_REALTIME,
            f"{key}_AUTH": "public",
            f"{key}_CONN_LIMIT": limit,
            "HEARTBEAT_ENABLED": False,
            **values,
        }
    )


async def opened(socket: str) -> WebsocketCommunicator:
    path, app, subprotocols = SOCKETS[socket]
    comm = WebsocketCommunicator(app(), path, subprotocols=subprotocols)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def refusal(comm: WebsocketCommunicator) -> list[dict[str, Any]]:
    """Everything the server sends before it closes, then the close."""
    outputs = []
    while True:
        output = await comm.receive_output(timeout=3)
        outputs.append(output)
        if output["type"] == "websocket.close":
            return outputs


@pytest.mark.parametrize("socket", ["rest", "logs"])
async def test_a_json_socket_over_its_limit_gets_the_error_then_4429(socket: str) -> None:
    with limited(socket):
        first = await opened(socket)
        second = await opened(socket)
        assert await refusal(second) == [
            {
                "type": "websocket.send",
                "text": '{"type":"server","status":"error","error":{"code":'
                '"REQUESTS_EXCEEDED","message":"Too many connections."}}',
            },
            {"type": "websocket.close", "code": 4429, "reason": "Too Many Requests"},
        ]
        await second.disconnect()
        await first.send_json_to({"type": "ping", "uid": 1})
        assert await first.receive_json_from(timeout=3) == {"type": "pong", "uid": 1}  # the first is untouched
        await first.disconnect()


async def test_the_graphql_socket_over_its_limit_is_closed_4429() -> None:
    with limited("graphql"):
        first = await opened("graphql")
        second = await opened("graphql")
        # graphql-ws clients know only close codes: no error frame, the close says it.
        assert await refusal(second) == [{"type": "websocket.close", "code": 4429, "reason": "Too Many Requests"}]
        await second.disconnect()
        await first.send_json_to({"type": "connection_init", "payload": {}})
        assert await first.receive_json_from(timeout=3) == {"type": "connection_ack"}  # the first is untouched
        await first.disconnect()


@pytest.mark.parametrize("socket", ["rest", "logs", "graphql"])
async def test_a_closed_connection_frees_its_place(socket: str) -> None:
    with limited(socket):
        before = RealtimeSocket.open_connections[socket]
        first = await opened(socket)
        assert RealtimeSocket.open_connections[socket] == before + 1
        await first.disconnect()
        assert RealtimeSocket.open_connections[socket] == before
        again = await opened(socket)
        assert RealtimeSocket.open_connections[socket] == before + 1
        await again.disconnect()


@pytest.mark.parametrize("socket", ["rest", "logs", "graphql"])
async def test_refused_sockets_never_count_against_the_limit(socket: str) -> None:
    with limited(socket):
        before = RealtimeSocket.open_connections[socket]
        first = await opened(socket)
        for _ in range(3):
            extra = await opened(socket)
            assert (await refusal(extra))[-1] == {
                "type": "websocket.close",
                "code": 4429,
                "reason": "Too Many Requests",
            }
            await extra.disconnect()
        assert RealtimeSocket.open_connections[socket] == before + 1
        await first.disconnect()
        assert RealtimeSocket.open_connections[socket] == before


@pytest.mark.parametrize("socket", ["rest", "logs", "graphql"])
async def test_an_unexpected_error_while_opening_refuses_and_frees_the_place(
    socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from realtime_auth import mixin

    async def broken(token: str) -> None:
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(mixin, "verify_url_token", broken)
    path, app, subprotocols = SOCKETS[socket]
    with limited(socket):
        before = RealtimeSocket.open_connections[socket]
        for _ in range(2):
            comm = WebsocketCommunicator(app(), f"{path}?access_token=x", subprotocols=subprotocols)
            connected, _ = await comm.connect()
            assert connected is False  # closed before accept (daphne answers HTTP 403), never a crash
            await comm.disconnect()
        assert RealtimeSocket.open_connections[socket] == before


async def test_the_graphql_socket_closes_4413_on_a_message_over_the_size_limit() -> None:
    with limited("graphql", MESSAGE_MAX_BYTES=1024):
        comm = await opened("graphql")
        await comm.send_json_to({"type": "connection_init", "payload": {"pad": "x" * 2048}})
        assert await refusal(comm) == [{"type": "websocket.close", "code": 4413, "reason": "Message Too Large"}]
        await comm.disconnect()


async def test_an_over_limit_graphql_socket_runs_nothing_it_is_sent() -> None:
    with limited("graphql"):
        first = await opened("graphql")
        second = await opened("graphql")
        await second.send_json_to({"type": "connection_init", "payload": {}})  # may arrive before the close
        await second.send_json_to({"id": "q", "type": "subscribe", "payload": {"query": "{ products { id } }"}})
        assert await refusal(second) == [{"type": "websocket.close", "code": 4429, "reason": "Too Many Requests"}]
        await second.disconnect()
        await first.disconnect()
