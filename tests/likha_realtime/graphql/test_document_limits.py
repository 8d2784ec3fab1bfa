"""GraphQL document limits (``GRAPHQL_MAX_DEPTH``, ``GRAPHQL_MAX_ALIASES``, ``GRAPHQL_MAX_TOKENS``) over HTTP and on
the socket: the GraphQL error shape with ``extensions.code``, nothing run, the socket left open."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from tests.likha_realtime.graphql.support import communicator
from tests.likha_realtime.support import FRAME_WAIT, realtime

pytestmark = pytest.mark.django_db(transaction=True)

ONE = "{ products(limit: 1) { id } }"


def aliases(count: int, limit: int = 1) -> str:
    return "{ " + " ".join(f"a{n}: products(limit: {limit}) {{ id }}" for n in range(count)) + " }"


def post(query: str) -> tuple[int, Any]:
    response = Client().post("/graphql", json.dumps({"query": query}), content_type="application/json")
    return response.status_code, response.json()


def refused(message: str, line: int, column: int) -> dict[str, Any]:
    error = {
        "message": message,
        "locations": [{"line": line, "column": column}],
        "extensions": {"code": "INVALID_QUERY"},
    }
    return {"data": None, "errors": [error]}


def test_http_aliases_over_the_limit_are_refused(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_MAX_ALIASES=2):
        assert post(aliases(2))[1]["data"] == {"a0": [{"id": str(seeded["bolt"])}], "a1": [{"id": str(seeded["bolt"])}]}
        status, body = post(aliases(3))
    assert status == 200
    assert body == {
        "data": None,
        "errors": [{"message": "3 aliases found. Allowed: 2", "extensions": {"code": "INVALID_QUERY"}}],
    }


def test_http_tokens_over_the_limit_are_refused(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_MAX_TOKENS=11):
        assert post(ONE)[1] == {"data": {"products": [{"id": str(seeded["bolt"])}]}}  # 11 tokens
        status, body = post("{ products(limit: 1) { id name } }")
    assert (status, body) == (
        200,
        refused("Syntax Error: Document contains more than 11 tokens. Parsing aborted.", line=1, column=34),
    )


def test_http_queries_are_one_level_deep_and_pass_the_smallest_depth_limit(seeded: dict[str, int]) -> None:
    # Query and mutation results are rows of scalars (relations are keys): depth 1; only a subscription's `data`
    # nests (see the socket test below).
    with realtime(GRAPHQL_MAX_DEPTH=1):
        query = "query Q { products(limit: 1) { ...F } } fragment F on products { id }"
        assert post(query)[1] == {"data": {"products": [{"id": str(seeded["bolt"])}]}}


def test_a_subscription_document_over_http_is_bounded_too(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_MAX_TOKENS=50):
        status, body = post("subscription { " + " ".join(f"a{n}: products_mutated {{ key }}" for n in range(20)) + " }")
    assert status == 200
    assert body["errors"][0]["extensions"] == {"code": "INVALID_QUERY"}
    assert body["errors"][0]["message"] == "Syntax Error: Document contains more than 50 tokens. Parsing aborted."


def test_the_reported_thousand_alias_query_is_refused_with_the_defaults_before_it_runs(seeded: dict[str, int]) -> None:
    query = aliases(1000, limit=1000)  # the report: 63 KB in, 4 MB out, 3.2 s of CPU
    started = time.process_time()
    status, body = post(query)
    spent = time.process_time() - started
    assert (status, body["data"], body["errors"][0]["extensions"]) == (200, None, {"code": "INVALID_QUERY"})
    assert body["errors"][0]["message"] == "Syntax Error: Document contains more than 5000 tokens. Parsing aborted."
    assert len(json.dumps(body)) < 300
    # A bound for a broken limit (the query itself took seconds), not a benchmark.
    assert spent < 1.0, spent


async def test_the_socket_answers_each_limit_with_an_error_for_the_operation_and_stays_open(
    seeded: dict[str, int],
) -> None:
    bolt = str(seeded["bolt"])
    with realtime(GRAPHQL_AUTH="public", GRAPHQL_MAX_ALIASES=1, GRAPHQL_MAX_TOKENS=24, GRAPHQL_MAX_DEPTH=1):
        async with communicator() as comm:
            cases = {
                "aliases": (aliases(2), {"message": "2 aliases found. Allowed: 1"}),
                "tokens": (
                    "{ products(limit: 1) { " + "id " * 20 + "} }",
                    {"message": "Syntax Error: Document contains more than 24 tokens. Parsing aborted."},
                ),
                "depth": (
                    "subscription { products_mutated { data { id } } }",
                    {
                        "message": "'anonymous' exceeds maximum operation depth of 1",
                        "locations": [{"line": 1, "column": 42}],
                    },
                ),
            }
            for operation, (query, error) in cases.items():
                await comm.send_json_to({"id": operation, "type": "subscribe", "payload": {"query": query}})
                assert await comm.receive_json_from(timeout=FRAME_WAIT) == {
                    "id": operation,
                    "type": "error",
                    "payload": [{**error, "extensions": {"code": "INVALID_QUERY"}}],
                }
            await comm.send_json_to({"id": "ok", "type": "subscribe", "payload": {"query": ONE}})
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == {
                "id": "ok",
                "type": "next",
                "payload": {"data": {"products": [{"id": bolt}]}},
            }
