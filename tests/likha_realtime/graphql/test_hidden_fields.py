"""GraphQL ``filter`` and ``sort`` arguments name fields too: for everyone but superusers a field that does not exist
is refused exactly as one they may not read (FORBIDDEN), over HTTP and the socket; superusers get INVALID_QUERY."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.likha_realtime.graphql.support import communicator, pair_for, post
from tests.likha_realtime.support import no_field, realtime

pytestmark = pytest.mark.django_db(transaction=True)

# Each query's arguments name the field NAME (replaced by a hidden and by an unknown name), in "customers".
ARGUMENTS = [
    pytest.param("customers", {"filter": {"NAME": {"_gt": 0}}}, id="filter"),
    pytest.param(
        "customers", {"filter": {"_or": [{"name": {"_eq": "x"}}, {"_and": [{"NAME": {"_gt": 0}}]}]}}, id="filter-nested"
    ),
    pytest.param("customers", {"filter": {"NAME": {"x": {"_eq": 0}}}}, id="filter-through"),
    pytest.param("customers", {"filter": {"NAME.x": {"_eq": 0}}}, id="filter-dotted-through"),
    pytest.param("customers", {"sort": ["NAME"]}, id="sort"),
    pytest.param("customers", {"sort": ["-NAME"]}, id="sort-descending"),
    pytest.param("sales_orders", {"filter": {"customer": {"NAME": {"_gt": 0}}}}, id="relation-filter"),
    pytest.param("sales_orders", {"filter": {"customer.NAME": {"_gt": 0}}}, id="relation-filter-dotted"),
    pytest.param("sales_orders", {"sort": ["customer.NAME"]}, id="relation-sort"),
]


def body(collection: str, arguments: dict[str, Any], name: str) -> dict[str, Any]:
    """A query of ``collection`` with ``arguments`` as variables, NAME replaced by ``name``."""
    query = f"query($filter: JSON, $sort: [String!]) {{ {collection}(filter: $filter, sort: $sort) {{ id }} }}"
    return {"query": query, "variables": json.loads(json.dumps(arguments).replace("NAME", name))}


def refused(collection: str, code: str, message: str, column: int = 42) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [
            {
                "message": message,
                "locations": [{"line": 1, "column": column}],
                "path": [collection],
                "extensions": {"code": code},
            }
        ],
    }


@pytest.mark.parametrize(("collection", "arguments"), ARGUMENTS)
def test_an_editor_gets_one_error_for_a_hidden_and_an_unknown_field_over_http(
    seeded: dict[str, int], collection: str, arguments: dict[str, Any]
) -> None:
    for name in ("credit_limit", "nope"):
        assert post(body(collection, arguments, name), "editor") == (
            200,
            refused(collection, "FORBIDDEN", no_field("customers", name)),
        ), name


@pytest.mark.parametrize(("collection", "arguments"), ARGUMENTS)
def test_a_superuser_is_told_the_field_does_not_exist_over_http(
    seeded: dict[str, int], collection: str, arguments: dict[str, Any]
) -> None:
    assert post(body(collection, arguments, "nope"), "admin") == (
        200,
        refused(collection, "INVALID_QUERY", 'Unknown field "nope" in collection "customers".'),
    )


async def test_an_editor_gets_one_error_for_a_hidden_and_an_unknown_field_over_the_socket(
    seeded: dict[str, int],
) -> None:
    pair = await pair_for("editor@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=pair.access) as comm:
            for name in ("credit_limit", "nope"):
                query = f"{{ customers(filter: {{{name}: {{_gt: 0}}}}) {{ id }} }}"  # a literal this time
                await comm.send_json_to({"id": name, "type": "subscribe", "payload": {"query": query}})
                assert await comm.receive_json_from(timeout=3) == {
                    "id": name,
                    "type": "next",
                    "payload": refused("customers", "FORBIDDEN", no_field("customers", name), column=3),
                }
                assert await comm.receive_json_from(timeout=3) == {"id": name, "type": "complete"}
