"""GraphQL errors are logged by code, path and message: never the query's source text, its literals or variables.

strawberry logged ``str(GraphQLError)`` (the message, then the source lines around each location) through
``strawberry.execution``; ``RealtimeSchema.process_errors`` replaces that. Checked on what tests capture (caplog)
and on what the logs socket streams, over HTTP and on the GraphQL socket.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler
from graphql import parse, validate

from likha_realtime.access.items import Items
from likha_realtime.graphql.errors import RealtimeSchema, unquoted, without_values
from likha_realtime.graphql.schema import get_schema
from likha_realtime.logs import handler as handler_module
from likha_realtime.logs.handler import LOCAL_ONLY_ATTRIBUTE, LogStreamHandler
from likha_realtime.logs.requests import RequestLog, request_log
from likha_realtime.sockets.logs import LogsConsumer
from tests.likha_realtime.graphql.support import close_of, communicator
from tests.likha_realtime.logs.support import RecordingLayer
from tests.likha_realtime.support import Roles, connected_socket, realtime
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hunter2"
SENTINEL = "-- end of the lines under test --"
ERRORS_LOGGER = "likha_realtime.graphql.errors"
# A filter with an unknown operator, on a string that holds a password (JSON in a GraphQL string literal).
BAD_FILTER = json.dumps(json.dumps({"name": {"_bogus": json.dumps({"password": SECRET})}}))


def graphql_post(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /graphql through Django's ASGI handler wrapped in the request log, as the server runs it."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]

    async def post() -> dict[str, Any]:
        comm = HttpCommunicator(request_log(ASGIHandler()), "POST", "/graphql", body=body, headers=headers)
        answer: dict[str, Any] = await comm.get_response(timeout=10)
        await comm.wait(timeout=10)  # the request line is written when the application returns
        return answer

    response = async_to_sync(post)()
    assert response["status"] == 200
    result: dict[str, Any] = json.loads(response["body"])
    return result


class Streamed:
    """What the logs socket gets: the frames of a handler of our own on the root logger, in ``raw`` style."""

    def __init__(self) -> None:
        self.layer = RecordingLayer()
        self.handler = LogStreamHandler(layer=self.layer, node_id="node-test")

    def data(self) -> list[dict[str, Any]]:
        return [json.loads(text)["data"] for _, text in self.layer.lines()]

    def until_now(self) -> list[dict[str, Any]]:
        """Every line published so far: a sentinel goes through the same queue last, so all before it are in."""
        logging.getLogger("tests.graphql.sentinel").warning(SENTINEL)
        lines = wait_until(
            lambda: (found := self.data()) and found[-1]["msg"] == SENTINEL and found,
            message="the sentinel line was never published",
        )
        return lines[:-1]


@pytest.fixture
def streamed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Streamed]:
    monkeypatch.setattr(RequestLog, "timer", itertools.repeat(7.0).__next__)  # every request: 0ms
    root = logging.getLogger()
    made = Streamed()
    root.addHandler(made.handler)
    try:
        with realtime(LOGS_STYLE="raw"):
            yield made
    finally:
        root.removeHandler(made.handler)
        made.handler.close()


def lines_of(streamed: Streamed) -> list[tuple[str, int, str]]:
    """(logger, wire level, msg) of the lines under test; none of any line's text shows a source or the secret."""
    lines = streamed.until_now()
    text = json.dumps(lines)
    assert SECRET not in text and "GraphQL request" not in text, text
    return [(line["name"], line["level"], line["msg"]) for line in lines]


def assert_no_source_or_secret_captured(caplog: pytest.LogCaptureFixture) -> None:
    assert SECRET not in caplog.text and "GraphQL request" not in caplog.text, caplog.text
    assert not [record for record in caplog.records if record.name.startswith("strawberry")]


REQUEST_LINE = ("likha_realtime.requests", 30, "POST /graphql 200 0ms")


def test_the_schema_logs_its_errors_itself() -> None:
    assert isinstance(get_schema(), RealtimeSchema)


@pytest.mark.usefixtures("seeded")
def test_an_unknown_operator_on_a_secret_string_is_logged_without_the_query(
    streamed: Streamed, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        body = graphql_post(f"{{ products(filter: {BAD_FILTER}) {{ id }} }}")
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INVALID_QUERY"} and error["path"] == ["products"]
    assert error["message"].startswith('Unknown operator "_bogus" on "name"; expected one of _eq, ')
    line = (ERRORS_LOGGER, 40, f"GraphQL error INVALID_QUERY at products: {unquoted(error['message'])}")
    assert lines_of(streamed) == [line, REQUEST_LINE]
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == ERRORS_LOGGER] == [
        (line[0], logging.WARNING, line[2])  # what the client sent wrong: not the server's error (issue 11)
    ]
    assert_no_source_or_secret_captured(caplog)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("document", "variables", "logged"),
    [
        (
            "query($f: JSON) { products(filter: $f) { id } }",
            {"f": {"price": {"_eq": SECRET}}},
            "INVALID_QUERY at products: Invalid value for [REDACTED] with [REDACTED]",
        ),
        (
            f"{{ products(filter: {json.dumps(json.dumps({'updated': {'_eq': SECRET}}))}) {{ id }} }}",
            None,
            "INVALID_QUERY at products: Invalid value for [REDACTED] with [REDACTED]",
        ),
        (f'{{ products_by_id(id: "{SECRET}") {{ id }} }}', None, "at products_by_id: Invalid key [REDACTED]."),
        (
            "query($f: JSON) { products(filter: $f) { id } }",
            {"f": {SECRET: {"_eq": 1}}},
            "FORBIDDEN at products: You don't have permission to access field [REDACTED] in collection [REDACTED].",
        ),
        (
            "query($f: JSON) { products(filter: $f) { id } }",
            {"f": {"name": {f"_{SECRET}": 1}}},
            "INVALID_QUERY at products: Unknown operator [REDACTED] on [REDACTED]",
        ),
    ],
    ids=["variable value", "inline value", "key", "field name", "operator name"],
)
def test_values_and_names_a_client_sent_are_not_logged_from_our_messages(
    streamed: Streamed, caplog: pytest.LogCaptureFixture, document: str, variables: Any, logged: str
) -> None:
    with caplog.at_level(logging.INFO):
        body = graphql_post(document, variables)

    assert SECRET in body["errors"][0]["message"]  # the client is told what it sent
    (line,) = [text for name, _, text in lines_of(streamed) if name == ERRORS_LOGGER]
    assert line.startswith("GraphQL error ") and logged in line, line
    assert_no_source_or_secret_captured(caplog)


@pytest.mark.parametrize(
    ("document", "variables", "logged"),
    [
        (  # the refused token is the secret literal
            f'mutation {{ update_products_item(id: 1, data: {{password "{SECRET}"}}) {{ id }} }}',
            None,
            "GRAPHQL_PARSE_FAILED at -: Syntax Error: Expected ':', found String [REDACTED].",
        ),
        (  # the secret literal is elsewhere in a document that ends too early
            f'{{ products(filter: {{password: {{_eq: "{SECRET}"}}}}) {{ id }}',
            None,
            "GRAPHQL_PARSE_FAILED at -: Syntax Error: Expected Name, found <EOF>.",
        ),
        (
            f'{{ products(limit: "{SECRET}") {{ id }} }}',
            None,
            "GRAPHQL_VALIDATION_FAILED at -: Int cannot represent non-integer value: [REDACTED]",
        ),
        (
            "query Q($limit: Int) { products(limit: $limit) { id } }",
            {"limit": SECRET},
            "GRAPHQL_VALIDATION_FAILED at -: Variable '$limit' has invalid value: [REDACTED]",
        ),
    ],
)
def test_refused_documents_are_logged_without_their_source_or_values(
    streamed: Streamed,
    caplog: pytest.LogCaptureFixture,
    document: str,
    variables: dict[str, Any] | None,
    logged: str,
) -> None:
    with caplog.at_level(logging.INFO):
        body = graphql_post(document, variables)
    assert [error.get("extensions") for error in body["errors"]] == [None]
    assert lines_of(streamed) == [(ERRORS_LOGGER, 40, f"GraphQL error {logged}"), REQUEST_LINE]
    assert_no_source_or_secret_captured(caplog)


@pytest.mark.usefixtures("seeded")
def test_an_unexpected_error_streams_its_message_and_keeps_its_traceback_local(
    streamed: Streamed, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Items) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(Items, "read_many", broken)
    with caplog.at_level(logging.INFO):
        body = graphql_post(f'{{ products(filter: {{name: {{_eq: "{SECRET}"}}}}) {{ id }} }}')
    assert body["errors"][0]["path"] == ["products"]
    assert lines_of(streamed) == [(ERRORS_LOGGER, 50, "GraphQL error INTERNAL at products: boom"), REQUEST_LINE]
    records = [r for r in caplog.records if r.name == ERRORS_LOGGER]
    assert [(r.levelno, r.getMessage(), getattr(r, LOCAL_ONLY_ATTRIBUTE, False)) for r in records] == [
        (logging.ERROR, "GraphQL error INTERNAL at products: boom", False),
        (logging.ERROR, "GraphQL error INTERNAL at products: traceback", True),
    ]
    assert records[0].exc_info is None and records[1].exc_info is not None
    assert isinstance(records[1].exc_info[1], RuntimeError)
    assert_no_source_or_secret_captured(caplog)


def test_graphql_cores_value_shapes_lose_their_values() -> None:
    """The message shapes of graphql-core 3.3 that quote a value (pinned; this fails if they change)."""
    schema = get_schema()
    assert schema is not None
    (enum_error,) = validate(schema._schema, parse(f"subscription {{ products_mutated(event: {SECRET}) {{ key }} }}"))
    assert enum_error.message == f"Value '{SECRET}' does not exist in 'EventEnum' enum."
    assert without_values(enum_error.message) == "Value [REDACTED] does not exist in 'EventEnum' enum."
    cases = {
        "Syntax Error: Unexpected Int '12345'.": "Syntax Error: Unexpected Int [REDACTED].",
        "Syntax Error: Expected Name, found BlockString 'a\nb'.": (
            "Syntax Error: Expected Name, found BlockString [REDACTED]."
        ),
        "Syntax Error: Unterminated string.": "Syntax Error: Unterminated string.",
        "Syntax Error: Unexpected character: '#'.": "Syntax Error: Unexpected character: [REDACTED]",
        "Expected value of type 'Int!', found: {'a': 1}.": "Expected value of type 'Int!', found: [REDACTED]",
        "Cannot query field 'pasword' on type 'products'. Did you mean 'password'?": (
            "Cannot query field 'pasword' on type 'products'. Did you mean 'password'?"
        ),
    }
    assert {message: without_values(message) for message in cases} == cases


@pytest.fixture
def root_stream() -> Iterator[LogStreamHandler]:
    """A root-logger handler of our own feeds the logs sockets; the app's handler is set aside meanwhile."""
    root = logging.getLogger()
    installed = handler_module._installed
    if installed is not None:
        root.removeHandler(installed)
    made = LogStreamHandler(node_id="node-test")
    root.addHandler(made)
    yield made
    root.removeHandler(made)
    made.close()
    if installed is not None:
        root.addHandler(installed)


@pytest.mark.usefixtures("root_stream")
async def test_the_logs_socket_streams_a_graphql_socket_error_without_its_query(
    roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    document = f'subscription {{ products_mutated(event: update, password "{SECRET}") {{ key }} }}'
    with realtime(LOGS_AUTH="handshake", GRAPHQL_AUTH="public", HEARTBEAT_ENABLED=False):
        logs = await connected_socket(f"/websockets/logs?access_token={roles.admin}", LogsConsumer)
        await logs.send_json_to({"type": "subscribe", "log_level": "info"})
        async with communicator() as graphql:
            await graphql.send_json_to({"id": "s", "type": "subscribe", "payload": {"query": document}})
            # graphql-transport-ws answers a syntax error with close 4400, the message as its reason
            assert await close_of(graphql) == (4400, f"Syntax Error: Expected ':', found String '{SECRET}'.")
        lines: list[str] = []
        while not lines or not lines[-1].startswith("GraphQL error"):
            frame = await logs.receive_json_from(timeout=5)
            if "data" in frame:
                lines.append(frame["data"]["msg"])
        await logs.disconnect()
    assert lines[-1] == "GraphQL error GRAPHQL_PARSE_FAILED at -: Syntax Error: Expected ':', found String [REDACTED]."
    assert [line for line in lines if SECRET in line or "GraphQL request" in line] == []
    assert_no_source_or_secret_captured(caplog)  # nothing logged it after the line either (the close, the socket's end)
