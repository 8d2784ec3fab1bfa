"""``/graphql`` over HTTP refuses subscriptions (they live on the socket, where rights changes reach them)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from likha_realtime.http.graphql import SUBSCRIPTIONS_ON_THE_SOCKET

pytestmark = pytest.mark.django_db

REFUSED = {
    "data": None,
    "errors": [{"message": SUBSCRIPTIONS_ON_THE_SOCKET, "extensions": {"code": "INVALID_PAYLOAD"}}],
}


@pytest.mark.parametrize(
    "accept",
    ["application/json", 'multipart/mixed;subscriptionSpec="1.0",application/json', "text/event-stream"],
)
def test_a_subscription_over_http_is_refused_on_every_transport(seeded: dict[str, int], accept: str) -> None:
    body = json.dumps({"query": "subscription { products_mutated { key } }"})
    response = Client().post("/graphql", body, content_type="application/json", HTTP_ACCEPT=accept)

    assert not response.streaming
    assert response.json() == REFUSED


def test_the_named_operation_decides(seeded: dict[str, int]) -> None:
    document = "query Q { products(limit: 1) { sku } } subscription S { products_mutated { key } }"
    query = Client().post("/graphql", {"query": document, "operationName": "Q"}, content_type="application/json")
    subscription = Client().post("/graphql", {"query": document, "operationName": "S"}, content_type="application/json")

    assert query.json() == {"data": {"products": [{"sku": "SKU-0001"}]}}
    assert subscription.json() == REFUSED


def test_a_query_that_mentions_the_word_is_still_a_query(seeded: dict[str, int]) -> None:
    document = "query($f: JSON) { products(filter: $f) { sku } }  # subscription"
    variables = {"f": {"name": {"_eq": "subscription"}}}
    response = Client().post("/graphql", {"query": document, "variables": variables}, content_type="application/json")

    assert response.json() == {"data": {"products": []}}
