"""Property: hostile frames on every socket (issue 11, item 5). Mutated valid messages of every type (wrong types,
missing and extra keys, huge numbers, NaN, deep nesting, unicode, lone surrogates, NUL), arbitrary JSON, broken
text, binary and oversized frames, driven through the consumers by channels' ``WebsocketCommunicator``.

Oracle (``fuzz_oracle``): every reply is a documented frame or close code, nothing is logged at ERROR or with a
traceback, and after each frame the socket still answers a ping (unless it closed with a documented code).
Examples per socket: 200 (100 per auth mode, 1–4 frames each; ~3 s per mode in-process); a socket that closes is
opened again for the next example. ``LIKHA_FUZZ_EXAMPLES=5000`` runs a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import connection
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from erp_demo.models import Product
from likha_realtime.graphql.schema import get_schema
from likha_realtime.sockets.graphql import GraphQLConsumer
from likha_realtime.sockets.logs import LogsConsumer
from likha_realtime.sockets.rest import RestConsumer
from tests.fuzz_frames import (
    DEEP_TEXTS,
    LOGS_MESSAGES,
    Frame,
    graphql_frames,
    hostile_frames,
    nested,
    rest_messages,
    text_frame,
)
from tests.likha_realtime.sockets.fuzz_oracle import (
    FRAME_WAIT,
    Exchange,
    check_graphql_exchange,
    check_json_exchange,
    probe,
    recorded,
    send_frame,
)
from tests.likha_realtime.support import Roles, realtime

pytestmark = pytest.mark.django_db(transaction=True)

MAX_BYTES = 256 * 1024  # room for DEEP_TEXTS (200 KB); an oversized frame is one byte-count over it
OVERSIZED = MAX_BYTES + 1
PRODUCT = 1  # the row the valid messages name (created by the fixture with this key)

FUZZ = settings(
    max_examples=int(os.environ.get("LIKHA_FUZZ_EXAMPLES", "100")),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)
FRAMES_PER_EXAMPLE = 4


@pytest.fixture
def product(roles: Roles) -> Roles:
    Product.objects.create(pk=PRODUCT, sku="SKU-FUZZ", name="Fuzzed", price="1.50")
    return roles


@contextmanager
def one_connection() -> Iterator[None]:
    """Keep the test's database connection for the run (``database_sync_to_async`` would reconnect per call)."""
    saved = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = None
    try:
        yield
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = saved
        connection.close()


Opener = Callable[[], Awaitable[WebsocketCommunicator]]


def run(frames: list[Frame], opener: Opener, exchange: Callable[[WebsocketCommunicator, Frame, int], Any]) -> None:
    """Send each frame then a probe on one socket; checks each exchange, and that nothing was logged as an error."""

    async def go() -> None:
        comm = await opener()
        closed = False
        for n, frame in enumerate(frames):
            try:
                outcome: Exchange = await exchange(comm, frame, n)
            except TimeoutError:
                raise AssertionError(f"no answer to the ping after {frame!r}: the socket is open but dead") from None
            if outcome.close is not None:
                closed = True
                break  # the server closed: daphne then sends the disconnect, as below
        await comm.disconnect(timeout=FRAME_WAIT_CLOSE)  # raises what the consumer raised, if it did
        # The consumer has finished: whatever it sent is queued. After a close, daphne refuses any send (autobahn
        # raises into the consumer): nothing may follow it.
        if closed:
            late = []
            while not comm.output_queue.empty():
                late.append(comm.output_queue.get_nowait())
            assert not late, f"sent after the close: {late}"

    with recorded() as records:
        async_to_sync(go)()
    assert not records.problems(), records.problems()


FRAME_WAIT_CLOSE = 10


# -- REST ----------------------------------------------------------------------------------------------------------


def rest_opener(roles: Roles, mode: str) -> Opener:
    async def opener() -> WebsocketCommunicator:
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), f"/websockets?access_token={roles.editor}")
        assert (await comm.connect(timeout=FRAME_WAIT))[0]
        return comm

    return opener


async def json_exchange(comm: WebsocketCommunicator, frame: Frame, n: int) -> Exchange:
    await send_frame(comm, frame)
    uid = f"probe-{n}"
    outcome = await probe(comm, {"type": "ping", "uid": uid}, lambda f: f == {"type": "pong", "uid": uid})
    check_json_exchange(outcome, frame)
    return outcome


def json_settings(socket: str, mode: str) -> Any:
    return realtime(
        **{f"{socket}_AUTH": mode}, HEARTBEAT_ENABLED=False, MESSAGE_MAX_BYTES=MAX_BYTES, REST_AUTH_TIMEOUT=10
    )


REST_FRAMES = st.lists(hostile_frames(rest_messages(PRODUCT), OVERSIZED), min_size=1, max_size=FRAMES_PER_EXAMPLE)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["public", "handshake"])
def test_rest_socket_answers_every_hostile_frame_with_a_documented_frame_or_close(product: Roles, mode: str) -> None:
    @FUZZ
    @given(frames=REST_FRAMES)
    @example(frames=[Frame(text=text) for text in DEEP_TEXTS])
    @example(frames=[text_frame({"type": "subscribe", "collection": "products", "query": {"filter": "\ud800"}})])
    @example(frames=[text_frame({"type": "items", "action": "read", "collection": "products", "id": 2**70})])
    def fuzz(frames: list[Frame]) -> None:
        run(frames, rest_opener(product, mode), json_exchange)

    with one_connection(), json_settings("REST", mode):
        fuzz()


# -- logs ----------------------------------------------------------------------------------------------------------


def logs_opener(roles: Roles) -> Opener:
    async def opener() -> WebsocketCommunicator:
        comm = WebsocketCommunicator(LogsConsumer.as_asgi(), f"/websockets/logs?access_token={roles.admin}")
        assert (await comm.connect(timeout=FRAME_WAIT))[0]
        return comm

    return opener


LOGS_FRAMES = st.lists(hostile_frames(list(LOGS_MESSAGES), OVERSIZED), min_size=1, max_size=FRAMES_PER_EXAMPLE)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["public", "handshake"])
def test_logs_socket_answers_every_hostile_frame_with_a_documented_frame_or_close(product: Roles, mode: str) -> None:
    @FUZZ
    @given(frames=LOGS_FRAMES)
    @example(frames=[Frame(text=nested(100_000)), Frame(data=b"\x00\xff")])
    def fuzz(frames: list[Frame]) -> None:
        run(frames, logs_opener(product), json_exchange)

    with one_connection(), json_settings("LOGS", mode):
        fuzz()


# -- GraphQL -------------------------------------------------------------------------------------------------------


def graphql_opener(roles: Roles, mode: str) -> Opener:
    """Handshake mode: logged in with ``connection_init`` (acknowledged); public mode: before any init."""

    async def opener() -> WebsocketCommunicator:
        comm = WebsocketCommunicator(
            GraphQLConsumer.as_asgi(schema=get_schema()), "/graphql", subprotocols=["graphql-transport-ws"]
        )
        assert (await comm.connect(timeout=FRAME_WAIT))[0]
        if mode == "handshake":
            await comm.send_json_to({"type": "connection_init", "payload": {"access_token": roles.editor}})
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "connection_ack"}
        return comm

    return opener


async def graphql_exchange(comm: WebsocketCommunicator, frame: Frame, n: int) -> Exchange:
    await send_frame(comm, frame)
    ping = {"type": "ping", "payload": {"probe": n}}
    outcome = await probe(comm, ping, lambda f: f == {"type": "pong", "payload": {"probe": n}})
    check_graphql_exchange(outcome)
    return outcome


GRAPHQL_FRAMES = st.lists(graphql_frames(OVERSIZED), min_size=1, max_size=FRAMES_PER_EXAMPLE)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["public", "handshake"])
def test_graphql_socket_answers_every_hostile_frame_with_a_protocol_message_or_close(product: Roles, mode: str) -> None:
    @FUZZ
    @given(frames=GRAPHQL_FRAMES)
    @example(frames=[Frame(text=nested(100_000))])
    @example(frames=[text_frame({"type": "ping", "payload": {"pad": "x" * (MAX_BYTES // 2)}})])
    @example(frames=[text_frame([1, 2])])
    @example(frames=[text_frame("connection_init")])
    @example(frames=[text_frame({"type": "subscribe", "id": {"a": 1}, "payload": {"query": "{ __typename }"}})])
    @example(frames=[text_frame({"type": "subscribe", "id": "1", "payload": "{ __typename }"})])
    @example(frames=[text_frame({"type": "subscribe", "id": "1", "payload": {"query": 5}})])
    @example(frames=[text_frame({"type": "subscribe", "id": "1", "payload": {"query": "{" * 10_000}})])
    def fuzz(frames: list[Frame]) -> None:
        run(frames, graphql_opener(product, mode), graphql_exchange)

    with one_connection(), realtime(GRAPHQL_AUTH=mode, MESSAGE_MAX_BYTES=MAX_BYTES):
        fuzz()
