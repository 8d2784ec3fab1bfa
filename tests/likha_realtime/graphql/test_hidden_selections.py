"""Selection sets name fields too: for everyone but superusers a field they may never read (hidden by its field rule,
or any field but the key of a collection they may not view) is refused exactly as a field that does not exist —
the same validation error, no suggestion — in queries, mutations' returned selections and subscriptions, over HTTP
and the socket. Superusers select it, and their errors keep graphql-core's suggestions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.likha_realtime.graphql.support import post, run, socket_as

pytestmark = pytest.mark.django_db(transaction=True)

# (role, collection C, field F it may never read, another collection O). The demo's rules: the editor may not read
# a customer's credit limit, the public role a product's stock; it may not view customers nor sales orders at all.
HIDDEN = [
    pytest.param("editor", "customers", "credit_limit", "products", id="editor-field-rule"),
    pytest.param("public", "products", "stock", "customers", id="public-field-rule"),
    pytest.param("public", "customers", "email", "products", id="public-no-view"),
    pytest.param("public", "sales_orders", "total", "products", id="public-no-view-no-field-rule"),
]

# Documents naming F in C (and O), each refused in validation; over HTTP and on the socket.
DOCUMENTS = {
    "query": "{ C(limit: 1) { id F } }",
    "by-id": '{ C_by_id(id: "1") { F } }',
    "alias": "{ C(limit: 1) { a: F } }",
    "arguments": "{ C(limit: 1) { F(x: 1) } }",
    "variables": "query($x: Int) { C(limit: 1) { F(x: $x) } }",
    "sub-selection": "{ C(limit: 1) { F { id } } }",
    "directive": "{ C(limit: 1) { F @include(if: true) } }",
    "inline-fragment": "{ C(limit: 1) { ... on C { F } } }",
    "named-fragment": "query { C(limit: 1) { ...f } } fragment f on C { F }",
    "same-alias": "{ C(limit: 1) { a: F a: id } }",
    "type-conflict": "{ O(limit: 1) { ... on C { a: F } a: id } }",  # F's type against an ID
    "create": "mutation { create_C_item(data: {}) { F } }",
    "update": 'mutation { update_C_item(id: "1", data: {}) { F } }',
}
# graphql-transport-ws only: subscriptions are refused over HTTP before validation.
SUBSCRIPTIONS = {
    "subscription": "subscription { C_mutated { key data { F } } }",
    "subscription-fragment": "subscription { C_mutated { data { ...f } } } fragment f on C { id F }",
}


def document(template: str, collection: str, field: str, other: str) -> str:
    # Operation and type names first: "C_mutated", "create_C_item" hold C.
    return template.replace("C", collection).replace("O", other).replace("F", field)


def unknown_like(field: str) -> str:
    """A name no collection has, as long as ``field``: both answers then have the same locations."""
    return "q" * len(field)


def renamed(answer: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(answer).replace(old, new))


def assert_refused_alike(hidden: Any, unknown: Any, field: str, collection: str) -> None:
    """The answer for the hidden ``field`` is the one for an unknown name of its length, the name aside; it is a
    validation error naming the field as not existing, and nothing in it suggests a name."""
    assert hidden == renamed(unknown, unknown_like(field), field)
    assert f"Cannot query field '{field}' on type '{collection}'." in json.dumps(hidden)
    assert "Did you mean" not in json.dumps(hidden)


@pytest.mark.parametrize(("role", "collection", "field", "other"), HIDDEN)
def test_a_field_one_may_never_read_is_refused_as_an_unknown_one_over_http(
    seeded: dict[str, int], role: str, collection: str, field: str, other: str
) -> None:
    for name, template in DOCUMENTS.items():
        status, hidden = post(document(template, collection, field, other), role)
        unknown = post(document(template, collection, unknown_like(field), other), role)
        assert (status, unknown[0], hidden["data"]) == (200, 200, None), name  # validation failed: nothing ran
        assert_refused_alike(hidden, unknown[1], field, collection)


@pytest.mark.parametrize(("role", "collection", "field", "other"), HIDDEN)
async def test_a_field_one_may_never_read_is_refused_as_an_unknown_one_over_the_socket(
    seeded: dict[str, int], role: str, collection: str, field: str, other: str
) -> None:
    async with socket_as(role) as comm:
        for name, template in {**DOCUMENTS, **SUBSCRIPTIONS}.items():
            hidden = await run(comm, document(template, collection, field, other), name)
            unknown = await run(comm, document(template, collection, unknown_like(field), other), name)
            assert hidden["type"] == "error", (name, hidden)
            assert_refused_alike(hidden, unknown, field, collection)


def test_the_editors_answers_for_a_hidden_and_an_unknown_field(seeded: dict[str, int]) -> None:
    for name in ("credit_limit", "nope"):
        assert post(f"{{ customers(limit: 1) {{ id {name} }} }}", "editor") == (
            200,
            {
                "data": None,
                "errors": [
                    {
                        "message": f"Cannot query field '{name}' on type 'customers'.",
                        "locations": [{"line": 1, "column": 28}],
                    }
                ],
            },
        ), name


async def test_the_public_roles_answer_over_the_socket(seeded: dict[str, int]) -> None:
    async with socket_as("public") as comm:
        for name in ("stock", "nope"):
            query = f"subscription {{ products_mutated {{ data {{ {name} }} }} }}"
            assert await run(comm, query, "s") == {
                "id": "s",
                "type": "error",
                "payload": [
                    {
                        "message": f"Cannot query field '{name}' on type 'products'.",
                        "locations": [{"line": 1, "column": 42}],
                    }
                ],
            }, name


def test_the_key_of_a_collection_one_may_not_view_is_refused_at_execution(seeded: dict[str, int]) -> None:
    """Validation knows every collection's key (``<c>_by_id(id)`` names it anyway); reading one still fails."""
    message = 'You don\'t have permission to access collection "customers" or it does not exist.'
    assert post("{ customers(limit: 1) { id } }", "public") == (
        200,
        {
            "data": None,
            "errors": [
                {
                    "message": message,
                    "locations": [{"line": 1, "column": 3}],
                    "path": ["customers"],
                    "extensions": {"code": "FORBIDDEN"},
                }
            ],
        },
    )


def test_a_superuser_selects_every_field_and_is_told_about_the_rest(seeded: dict[str, int]) -> None:
    status, body = post("{ customers(limit: 1) { credit_limit } }", "admin")
    assert (status, list(body), list(body["data"]["customers"][0])) == (200, ["data"], ["credit_limit"])
    assert post("{ customers(limit: 1) { credit_limit(x: 1) } }", "admin") == (
        200,
        {
            "data": None,
            "errors": [
                {
                    "message": "Unknown argument 'x' on field 'customers.credit_limit'.",
                    "locations": [{"line": 1, "column": 38}],
                }
            ],
        },
    )
    assert post("{ customers(limit: 1) { credit_limix } }", "admin") == (
        200,
        {
            "data": None,
            "errors": [
                {
                    "message": "Cannot query field 'credit_limix' on type 'customers'. Did you mean 'credit_limit'?",
                    "locations": [{"line": 1, "column": 25}],
                }
            ],
        },
    )


async def test_a_superuser_reads_every_field_over_the_socket(seeded: dict[str, int]) -> None:
    async with socket_as("admin") as comm:
        reply = await run(comm, f'{{ customers_by_id(id: "{seeded["customer"]}") {{ credit_limit }} }}')
    assert reply["type"] == "next"
    assert list(reply["payload"]["data"]["customers_by_id"]) == ["credit_limit"]
