"""Which subscription selections GraphQL's fast lane (``likha_realtime.graphql.fastlane``) answers itself: plain fields
of ``<c>_mutated`` and of ``data``, with aliases and ``__typename``; anything else is strawberry's. (That its answers
equal strawberry's is tests/live/test_graphql_fastlane_live.py, on a real daphne.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

from likha_realtime.graphql.fastlane import projection
from likha_realtime.graphql.schema import get_schema

pytestmark = pytest.mark.django_db


def info(document: str) -> Any:
    """What ``projection`` reads of the resolve info of the subscription's root field."""
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    schema = get_schema()
    assert schema is not None
    root = schema._schema.subscription_type
    assert root is not None
    node = operation.selection_set.selections[0]
    return SimpleNamespace(field_nodes=[node], return_type=root.fields[node.name.value].type)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "document",
    [
        "subscription { products_mutated { key event data { id stock } } }",
        "subscription { p: products_mutated { __typename k: key event d: data { __typename id s: stock } } }",
        "subscription { products_mutated(event: update) { event } }",
    ],
)
def test_plain_selections_are_projected(document: str) -> None:
    assert projection(info(document)) is not None


@pytest.mark.parametrize(
    "document",
    [
        "subscription { products_mutated { ... on products_mutated { key } } }",  # a fragment
        "subscription { products_mutated { key @include(if: true) } }",  # a directive
        "subscription { products_mutated @skip(if: false) { key } }",
        "subscription { products_mutated { a: data { id } b: data { name } } }",  # data twice: each its own columns
        "subscription { products_mutated { key key } }",  # merged fields
        "subscription { products_mutated { data { ... on products { id } } } }",
    ],
)
def test_anything_else_is_left_to_strawberry(document: str) -> None:
    assert projection(info(document)) is None


def test_the_projection_keeps_aliases_and_order() -> None:
    plain = projection(info("subscription { p: products_mutated { k: key event d: data { s: stock id } } }"))
    assert plain is not None
    assert plain.root_key == "p"
    assert plain.fields == (("k", "key"), ("event", "event"), ("d", "data"))
    assert plain.data == (("s", "stock"), ("id", "id"))
