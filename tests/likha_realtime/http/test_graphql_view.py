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
    query = json.dumps({"query": f"{{ products_by_id(id: {bolt}) {{ id stock }} }}"})
    public = Client().post("/graphql", query, content_type="application/json")
    assert public.json() == {"data": {"products_by_id": {"id": str(bolt), "stock": None}}}
    authed = Client().post(
        "/graphql", query, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {pair.access}"
    )
    assert authed.json()["data"]["products_by_id"]["stock"] is not None
    bad = Client().post("/graphql", query, content_type="application/json", HTTP_AUTHORIZATION="Bearer nope")
    assert bad.status_code == 401
    assert bad.json() == {"errors": [{"message": "Invalid token.", "extensions": {"code": "INVALID_TOKEN"}}]}
