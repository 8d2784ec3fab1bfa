"""GraphQL introspection (``GRAPHQL_INTROSPECTION``: admin, all, off) over HTTP and the socket, and validation errors
without graphql-core's "Did you mean …?" for everyone but superusers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.likha_realtime.graphql.support import communicator, pair_for, post, run
from tests.likha_realtime.support import realtime

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "customers") { name } }'
TYPENAME = "{ __typename }"


def disabled(field: str, line: int = 1, column: int = 3) -> dict[str, Any]:
    return {
        "message": f"GraphQL introspection has been disabled, but the requested query contained the field '{field}'.",
        "locations": [{"line": line, "column": column}],
    }


# Both introspection fields of SCHEMA are refused: __schema and queryType (a field of type __Type).
SCHEMA_REFUSED = {"data": None, "errors": [disabled("__schema"), disabled("queryType", 1, 14)]}
TYPE_REFUSED = {"data": None, "errors": [disabled("__type")]}
SCHEMA_ANSWER = {"data": {"__schema": {"queryType": {"name": "Query"}}}}
TYPE_ANSWER = {"data": {"__type": {"name": "customers"}}}


# -- over HTTP -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "refused"), [(SCHEMA, SCHEMA_REFUSED), (TYPE, TYPE_REFUSED)], ids=["schema", "type"])
@pytest.mark.parametrize("role", ["public", "editor"])
def test_by_default_only_superusers_may_introspect_over_http(
    seeded: dict[str, int], role: str, query: str, refused: dict[str, Any]
) -> None:
    assert post(query, role) == (200, refused)


def test_a_superuser_introspects_over_http_by_default(seeded: dict[str, int]) -> None:
    assert post(SCHEMA, "admin") == (200, SCHEMA_ANSWER)
    assert post(TYPE, "admin") == (200, TYPE_ANSWER)


@pytest.mark.parametrize("role", ["public", "editor", "admin"])
def test_typename_is_answered_to_everyone_in_every_mode(seeded: dict[str, int], role: str) -> None:
    for mode in ("admin", "all", "off"):
        with realtime(GRAPHQL_INTROSPECTION=mode):
            assert post(TYPENAME, role) == (200, {"data": {"__typename": "Query"}}), mode


def test_all_lets_the_public_role_introspect(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_INTROSPECTION="all"):
        assert post(SCHEMA) == (200, SCHEMA_ANSWER)
        assert post(TYPE, "editor") == (200, TYPE_ANSWER)


def test_off_refuses_even_a_superuser(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_INTROSPECTION="off"):
        assert post(SCHEMA, "admin") == (200, SCHEMA_REFUSED)


def test_an_introspection_field_beside_others_refuses_the_whole_operation(seeded: dict[str, int]) -> None:
    query = '{ products(limit: 1) { id } __type(name: "customers") { name } }'
    assert post(query) == (200, {"data": None, "errors": [disabled("__type", 1, 29)]})


# -- over the socket -------------------------------------------------------------------------------------------


async def test_the_public_role_may_not_introspect_over_the_socket_by_default(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            assert await run(comm, SCHEMA) == {"id": "q", "type": "error", "payload": SCHEMA_REFUSED["errors"]}
            assert await run(comm, TYPENAME) == {
                "id": "q",
                "type": "next",
                "payload": {"data": {"__typename": "Query"}},
            }


async def test_a_superuser_introspects_over_the_socket(seeded: dict[str, int]) -> None:
    pair = await pair_for("admin@example.com")
    with realtime(GRAPHQL_AUTH="handshake"):
        async with communicator(access_token=pair.access) as comm:
            assert await run(comm, SCHEMA) == {"id": "q", "type": "next", "payload": SCHEMA_ANSWER}


async def test_the_setting_is_read_per_operation_on_an_open_socket(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            with realtime(GRAPHQL_AUTH="public", GRAPHQL_INTROSPECTION="all"):
                assert await run(comm, TYPE) == {"id": "q", "type": "next", "payload": TYPE_ANSWER}
            assert await run(comm, TYPE) == {"id": "q", "type": "error", "payload": TYPE_REFUSED["errors"]}


# -- suggestions -----------------------------------------------------------------------------------------------

MISSPELT = "{ customers(limit: 1) { credit_limt } }"  # one letter from a field the editor may not read
MISSPELT_ARGUMENT = "{ customers(limt: 1) { id } }"
NO_FIELD = "Cannot query field 'credit_limt' on type 'customers'."
NO_ARGUMENT = "Unknown argument 'limt' on field 'Query.customers'."


def validation_error(message: str, column: int) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "locations": [{"line": 1, "column": column}]}]}


@pytest.mark.parametrize("mode", ["admin", "all", "off"])
@pytest.mark.parametrize("role", ["public", "editor"])
def test_validation_errors_name_no_suggestion_to_anyone_but_superusers(
    seeded: dict[str, int], role: str, mode: str
) -> None:
    with realtime(GRAPHQL_INTROSPECTION=mode):
        assert post(MISSPELT, role) == (200, validation_error(NO_FIELD, 25))
        assert post(MISSPELT_ARGUMENT, role) == (200, validation_error(NO_ARGUMENT, 13))


@pytest.mark.parametrize("mode", ["admin", "all", "off"])
def test_superusers_keep_the_suggestions_of_validation_errors(seeded: dict[str, int], mode: str) -> None:
    field_hint = f"{NO_FIELD} Did you mean 'credit_limit'?"
    argument_hint = f"{NO_ARGUMENT} Did you mean 'limit'?"
    with realtime(GRAPHQL_INTROSPECTION=mode):
        assert post(MISSPELT, "admin") == (200, validation_error(field_hint, 25))
        assert post(MISSPELT_ARGUMENT, "admin") == (200, validation_error(argument_hint, 13))


async def test_validation_errors_name_no_suggestion_over_the_socket(seeded: dict[str, int]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            assert await run(comm, MISSPELT) == {
                "id": "q",
                "type": "error",
                "payload": validation_error(NO_FIELD, 25)["errors"],
            }
