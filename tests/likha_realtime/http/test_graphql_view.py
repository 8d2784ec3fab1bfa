"""HTTP ``/graphql`` (PROTOCOL §8): a Bearer access token or the public role; a bad token is 401."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from erp_demo.models import User
from realtime_auth import tokens

pytestmark = pytest.mark.django_db(transaction=True)


def test_http_graphql_with_a_bearer_token_and_as_the_public_role(seeded: dict[str, int]) -> None:
    editor = User.objects.get(email="editor@example.com")
    pair = tokens.issue_pair(editor)
    bolt = seeded["bolt"]
    document = f"{{ products_by_id(id: {bolt}) {{ id stock }} }}"
    query = json.dumps({"query": document})
    public = Client().post("/graphql", query, content_type="application/json")
    column = document.index("stock") + 1
    message = "Cannot query field 'stock' on type 'products'."
    refused = {"message": message, "locations": [{"line": 1, "column": column}]}
    # The public role may not read stock: the field is not in the schema its operations are validated against.
    assert public.json() == {"data": None, "errors": [refused]}
    authed = Client().post(
        "/graphql", query, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {pair.access}"
    )
    assert authed.json()["data"]["products_by_id"]["stock"] is not None
    bad = Client().post("/graphql", query, content_type="application/json", HTTP_AUTHORIZATION="Bearer nope")
    assert bad.status_code == 401
    assert bad.json() == {"errors": [{"message": "Invalid token.", "extensions": {"code": "INVALID_TOKEN"}}]}
