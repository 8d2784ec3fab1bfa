"""What the socket fuzz found (issue 11, item 5), each pinned by an exact test.

- GraphQL: a frame that is JSON but not a message object (``[1,2]``, ``"x"``), or a message whose fields have the
  wrong type (an object as ``id``, a string as ``payload``, a number as ``query``, no ``id`` to ``complete``),
  raised ``TypeError``/``KeyError`` in strawberry's handler task: the task died, the socket stayed open and answered
  nothing again. Now: close 4400 with the broken rule (the reference graphql-ws server's wording).
- GraphQL: an integer over Python's 4,300 digits raised a plain ``ValueError`` in ``loads_bounded``: the same dead
  socket. Now: "not JSON", close 4400 (and HTTP 400 on ``POST /graphql``).
- GraphQL: strawberry went on handling the frames that followed a close (the probe's ping), and its ``pong`` after
  the close made daphne raise ``Disconnected`` into the consumer ("Exception inside application" in the log).
  Now nothing is handled or sent after a close.
- GraphQL: an ``operationName`` naming no operation, or an empty ``query``, was logged at ERROR with a traceback
  (strawberry's exceptions looked like a bug of ours); and every client error was logged at ERROR, so any client
  could fill the error log. Now one WARNING line each; ERROR stays for ``INTERNAL``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

from likha_realtime.wire.codec import loads_bounded
from tests.likha_realtime.graphql.support import app, close_of
from tests.likha_realtime.support import FRAME_WAIT, realtime

pytestmark = pytest.mark.django_db(transaction=True)

HUGE_INT = "9" * 5_000


async def acknowledged(protocol: str | None = None) -> GraphQLWebsocketCommunicator:
    kwargs: dict[str, Any] = {} if protocol is None else {"protocol": protocol}
    comm = GraphQLWebsocketCommunicator(application=app(), path="/graphql", **kwargs)
    assert (await comm.connect(timeout=FRAME_WAIT))[0]
    await comm.send_json_to({"type": "connection_init"})
    assert (await comm.receive_json_from(timeout=FRAME_WAIT))["type"] == "connection_ack"  # the public role
    return comm


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("[1, 2]", "Message is expected to be an object, but got array"),
        ('"connection_init"', "Message is expected to be an object, but got string"),
        ("null", "Message is expected to be an object, but got null"),
        ('{"payload": {}}', "Message is missing the 'type' property"),
        ('{"type": ["ping"]}', "Message 'type' must be a string"),
        (
            '{"type": "subscribe", "id": {"a": 1}, "payload": {"query": "{ __typename }"}}',
            "\"subscribe\" message expects the 'id' property to be a non-empty string, but got object",
        ),
        (
            '{"type": "subscribe", "id": "", "payload": {"query": "{ __typename }"}}',
            "\"subscribe\" message expects the 'id' property to be a non-empty string, but got string",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": "{ __typename }"}',
            "\"subscribe\" message expects the 'payload' property to be an object, but got string",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
            "\"subscribe\" message payload expects the 'query' property to be a string",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": []}}',
            "\"subscribe\" message payload expects the 'variables' property to be an object, nullish or missing",
        ),
        (
            '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "operationName": 7}}',
            "\"subscribe\" message payload expects the 'operationName' property to be a string, nullish or missing",
        ),
        (
            '{"type": "complete"}',
            "\"complete\" message expects the 'id' property to be a non-empty string, but got null",
        ),
        ('{"type": "ping", "n": ' + HUGE_INT + "}", "WebSocket message must be valid JSON"),
    ],
    ids=[
        "array",
        "string",
        "null",
        "no-type",
        "type-array",
        "id-object",
        "id-empty",
        "payload-string",
        "query-number",
        "variables-array",
        "operation-name-number",
        "complete-without-id",
        "huge-int",
    ],
)
async def test_a_malformed_graphql_message_closes_4400_with_the_broken_rule(frame: str, reason: str) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        comm = await acknowledged()
        await comm.send_input({"type": "websocket.receive", "text": frame})
        await comm.send_json_to({"type": "ping"})  # handled by no one: the socket closed
        assert await close_of(comm) == (4400, reason)
        await comm.disconnect(timeout=FRAME_WAIT)  # what daphne sends next; raises what the consumer raised
        assert comm.output_queue.empty(), "a frame was sent after the close"


async def test_a_malformed_legacy_graphql_ws_start_closes_4400_instead_of_going_deaf() -> None:
    with realtime(GRAPHQL_AUTH="public"):
        comm = await acknowledged(GRAPHQL_WS_PROTOCOL)
        await comm.send_json_to({"type": "start", "payload": {"query": "{ __typename }"}})
        assert await close_of(comm) == (
            4400,
            "\"start\" message expects the 'id' property to be a non-empty string, but got null",
        )
        await comm.disconnect(timeout=FRAME_WAIT)


async def test_frames_after_a_close_are_neither_handled_nor_answered() -> None:
    """Three frames in one go, the first closing the socket: the mutation and the ping that follow are ignored."""
    with realtime(GRAPHQL_AUTH="public"):
        comm = await acknowledged()
        await comm.send_json_to({"type": "nope"})
        await comm.send_json_to(
            {"id": "m", "type": "subscribe", "payload": {"query": "mutation { delete_products_item(id: 1) { id } }"}}
        )
        await comm.send_json_to({"type": "ping", "payload": {"late": True}})
        assert await close_of(comm) == (4400, "Unknown message type: nope")
        await comm.disconnect(timeout=FRAME_WAIT)
        assert comm.output_queue.empty(), "a frame was sent after the close"


@pytest.mark.parametrize(
    ("payload", "line", "close"),
    [
        (  # strawberry closes for it (graphql-transport-ws: 4400 with the reason)
            {"query": "query A { __typename }", "operationName": "B"},
            'GraphQL error GRAPHQL_VALIDATION_FAILED at -: Unknown operation named "B".',
            (4400, 'Unknown operation named "B".'),
        ),
        ({"query": ""}, 'GraphQL error GRAPHQL_VALIDATION_FAILED at -: Request data is missing a "query" value', None),
        (
            {"query": "{ nope }"},
            "GraphQL error GRAPHQL_VALIDATION_FAILED at -: Cannot query field 'nope' on type 'Query'.",
            None,
        ),
    ],
    ids=["unknown-operation-name", "empty-query", "unknown-field"],
)
async def test_a_clients_graphql_error_is_one_warning_line_without_traceback(
    caplog: pytest.LogCaptureFixture, payload: dict[str, Any], line: str, close: Any
) -> None:
    with realtime(GRAPHQL_AUTH="public"), caplog.at_level(logging.INFO):
        comm = await acknowledged()
        await comm.send_json_to({"id": "1", "type": "subscribe", "payload": payload})
        await comm.send_json_to({"type": "ping"})
        if close is not None:
            assert await close_of(comm) == close
        else:
            while (frame := await comm.receive_json_from(timeout=FRAME_WAIT)) != {"type": "pong"}:
                assert frame["type"] in {"error", "next", "complete"}, frame
        await comm.disconnect(timeout=FRAME_WAIT)
    records = [r for r in caplog.records if r.name == "likha_realtime.graphql.errors"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in records] == [(logging.WARNING, line, None)]


async def test_an_integer_longer_than_python_parses_is_not_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_bounded('{"n": ' + HUGE_INT + "}")


@pytest.mark.django_db  # no socket: a plain (faster) test transaction
def test_http_graphql_answers_400_to_an_integer_longer_than_python_parses() -> None:
    body = '{"query": "{ __typename }", "variables": {"n": ' + HUGE_INT + "}}"
    response = Client().post("/graphql", body, content_type="application/json")
    assert (response.status_code, response.content) == (400, b"Unable to parse request body as JSON")
