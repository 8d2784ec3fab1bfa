"""Which user a password login names: ``email`` or the user model's ``USERNAME_FIELD`` on the wire, and the username
handed to ``django.contrib.auth.authenticate()`` (realtime_auth.usernames, used by tokens.login, the socket's
credentials and ``POST /auth/login``).

The demo's model logs in by email (its email field is its username field). For the other rules, ``username_model``
makes it look like a model whose ``USERNAME_FIELD`` is ``first_name`` (a username) and whose ``EMAIL_FIELD`` is
``last_name`` (an email field without uniqueness, so two users can share an email), and ``calls`` records what
``authenticate()`` is asked. Real host models and backends, end to end: ``test_hosts.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.http import HttpRequest
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from erp_demo.models import User
from realtime_auth import credentials, tokens, usernames
from realtime_auth.credentials import Credentials, Kind
from realtime_auth.errors import AuthError, InvalidCredentials
from tests.realtime_auth.hosts import backends

pytestmark = pytest.mark.django_db

PASSWORD = "a-password"


@pytest.fixture
def username_model(monkeypatch: pytest.MonkeyPatch) -> type[User]:
    monkeypatch.setattr(User, "USERNAME_FIELD", "first_name")
    monkeypatch.setattr(User, "EMAIL_FIELD", "last_name")
    return User


def person(username: str, email: str) -> User:
    return User.objects.create_user(f"{username}@users.example", PASSWORD, first_name=username, last_name=email)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """``authenticate()`` as realtime_auth calls it: each call's request and credentials; it refuses them all."""
    recorded: list[tuple[Any, dict[str, Any]]] = []

    def authenticate(request: Any = None, **given: Any) -> None:
        recorded.append((request, given))

    monkeypatch.setattr(tokens, "authenticate", authenticate)
    return recorded


def login_refused(identifier: Any, field: str) -> None:
    with pytest.raises(InvalidCredentials) as refusal:
        tokens.login(identifier, PASSWORD, field=field)
    assert (refusal.value.http_code, refusal.value.http_message) == ("INVALID_CREDENTIALS", "Invalid user credentials.")


def post(body: Any) -> tuple[int, Any]:
    response = Client().post("/auth/login", body, content_type="application/json")
    return response.status_code, response.json()


def invalid(*messages: str) -> tuple[int, Any]:
    return 400, {"errors": [{"message": message, "extensions": {"code": "INVALID_PAYLOAD"}} for message in messages]}


# -- the demo's model: the email is the username ------------------------------------------------------------------


def test_the_demo_model_is_named_by_email_only_and_its_email_is_the_username(
    calls: list[tuple[Any, dict[str, Any]]], django_assert_num_queries: Any
) -> None:
    assert usernames.login_fields() == ("email",)
    with django_assert_num_queries(0):  # no lookup: the backend matches the email (the demo's ignoring case)
        assert usernames.username_for("email", "Editor@Example.com") == "Editor@Example.com"
    login_refused("Editor@Example.com", "email")
    assert calls == [(None, {"username": "Editor@Example.com", "password": PASSWORD})]


def test_username_is_not_a_login_field_of_the_demo_model() -> None:
    with pytest.raises(AuthError):
        credentials.parse_credentials({"username": "editor@example.com", "password": PASSWORD})
    assert post({"username": "editor@example.com", "password": PASSWORD}) == invalid("email: This field is required.")


# -- a model with a username: the email is looked up --------------------------------------------------------------


def test_the_username_field_name_is_a_login_field_too(username_model: type[User]) -> None:
    assert usernames.login_fields() == ("email", "first_name")
    assert credentials.parse_credentials({"first_name": "ann", "password": PASSWORD, "uid": 1}) == Credentials(
        Kind.PASSWORD, PASSWORD, "ann", "first_name"
    )
    assert credentials.parse_credentials({"email": "ann@example.com", "password": PASSWORD}) == Credentials(
        Kind.PASSWORD, PASSWORD, "ann@example.com", "email"
    )


def test_the_username_field_authenticates_its_value_without_a_lookup(
    username_model: type[User], calls: list[tuple[Any, dict[str, Any]]], django_assert_num_queries: Any
) -> None:
    person("ann", "ann@example.com")
    with django_assert_num_queries(0):
        login_refused("ann@example.com", "first_name")  # a username that looks like an email stays a username
    assert calls == [(None, {"username": "ann@example.com", "password": PASSWORD})]


def test_an_email_of_exactly_one_user_authenticates_that_users_username_ignoring_case(
    username_model: type[User], calls: list[tuple[Any, dict[str, Any]]]
) -> None:
    person("ann", "Ann@Example.com")
    person("bob", "bob@example.com")
    login_refused("ANN@example.COM", "email")
    assert calls == [(None, {"username": "ann", "password": PASSWORD})]


@pytest.mark.parametrize(
    "emails",
    [
        ["bob@example.com"],  # unknown email
        ["ann@example.com", "ANN@example.com"],  # shared by two users: ambiguous
    ],
    ids=["unknown", "ambiguous"],
)
def test_an_unknown_or_ambiguous_email_is_authenticated_as_itself_and_fails_like_a_wrong_password(
    username_model: type[User], calls: list[tuple[Any, dict[str, Any]]], emails: list[str]
) -> None:
    for number, email in enumerate(emails):
        person(f"user{number}", email)
    login_refused("ann@example.com", "email")
    # A backend may take an email as a username (LDAP); with Django's, the password is hashed either way.
    assert calls == [(None, {"username": "ann@example.com", "password": PASSWORD})]


@pytest.mark.parametrize("emails", [[], ["ann@example.com"], ["ann@example.com", "Ann@example.com"]])
def test_every_email_costs_the_same_one_lookup(username_model: type[User], emails: list[str]) -> None:
    from django.db import connection

    for number, email in enumerate(emails):
        person(f"user{number}", email)
    with CaptureQueriesContext(connection) as queries:
        usernames.username_for("email", "ann@example.com")
    assert len(queries) == 1


def test_a_model_without_its_email_field_authenticates_the_email_as_a_username(
    username_model: type[User], monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    monkeypatch.setattr(User, "EMAIL_FIELD", "mail")  # no such field
    with django_assert_num_queries(0):
        assert usernames.username_for("email", "ann@example.com") == "ann@example.com"


# -- exactly one login field, and the limits on it ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "ann@example.com", "first_name": "ann", "password": PASSWORD},  # both
        {"password": PASSWORD},  # neither
        {"first_name": "ann"},  # no password
        {"first_name": "ann", "password": PASSWORD, "access_token": "x"},  # two credential sets
    ],
    ids=["both", "neither", "no-password", "two-sets"],
)
def test_a_socket_login_names_its_user_with_exactly_one_field(
    username_model: type[User], payload: dict[str, Any]
) -> None:
    with pytest.raises(AuthError):
        credentials.parse_credentials(payload)


def test_http_login_with_both_fields_or_neither_is_the_documented_400(username_model: type[User]) -> None:
    both = {"email": "ann@example.com", "first_name": "ann", "password": PASSWORD}
    assert post(both) == invalid("Give one of email or first_name, not both.")
    assert post({"password": PASSWORD}) == invalid("email: This field is required.")
    assert post({}) == invalid("email: This field is required.", "password: This field is required.")


@pytest.mark.parametrize(
    "value",
    ["", "a" * 4097, "ann\x00", "\ud800", None, ["ann"]],
    ids=["empty", "too-long", "nul", "lone-surrogate", "null", "list"],
)
def test_the_username_field_has_the_limits_of_every_credential(
    username_model: type[User], calls: list[tuple[Any, dict[str, Any]]], value: Any
) -> None:
    with pytest.raises(AuthError):
        credentials.parse_credentials({"first_name": value, "password": PASSWORD})
    login_refused(value, "first_name")
    assert calls == []  # refused before any backend sees it
    status, body = post({"first_name": value, "password": PASSWORD})
    assert (status, body["errors"][0]["extensions"]) == (400, {"code": "INVALID_PAYLOAD"})
    assert body["errors"][0]["message"].startswith("first_name: ")


def test_a_field_that_is_not_a_login_field_is_refused(
    username_model: type[User], calls: list[tuple[Any, dict[str, Any]]]
) -> None:
    person("ann", "ann@example.com")
    login_refused("True", "is_superuser")
    assert calls == []


@pytest.mark.parametrize("name", ["uid", "type", "access_token", "refresh_token", "password"])
def test_a_username_field_named_like_a_protocol_key_is_not_a_login_field(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(User, "USERNAME_FIELD", name)
    assert usernames.login_fields() == ("email",)
    token = {"type": "auth", "access_token": "a.b.c", "uid": 5}
    assert credentials.parse_credentials(token) == Credentials(Kind.ACCESS_TOKEN, "a.b.c")


# -- the host's backends ----------------------------------------------------------------------------------------


def test_http_logins_hand_the_http_request_to_the_backends_and_sockets_none(
    calls: list[tuple[Any, dict[str, Any]]],
) -> None:
    post({"email": "editor@example.com", "password": PASSWORD})
    with pytest.raises(InvalidCredentials):
        credentials.authenticate_sync(credentials.parse_credentials({"email": "editor@example.com", "password": "p"}))
    assert [type(request) for request, _ in calls] == [type(calls[0][0]), type(None)]
    assert isinstance(calls[0][0], HttpRequest)


@pytest.fixture
def master_key() -> Iterator[None]:
    path = f"{backends.__name__}.MasterKeyBackend"
    with override_settings(AUTHENTICATION_BACKENDS=[path, "django.contrib.auth.backends.ModelBackend"]):
        backends.CALLS.clear()
        yield
    backends.CALLS.clear()


def test_the_hosts_authentication_backends_apply_to_http_and_socket_logins(master_key: None) -> None:
    User.objects.create_user("editor@example.com", "editor-password")
    status, body = post({"email": "editor@example.com", "password": backends.MASTER_KEY})
    assert (status, list(body["data"])) == (200, ["access_token", "refresh_token", "expires"])
    result = credentials.authenticate_sync(
        credentials.parse_credentials({"email": "editor@example.com", "password": backends.MASTER_KEY})
    )
    assert result.identity.user.email == "editor@example.com"
    assert post({"email": "editor@example.com", "password": "editor-password"})[0] == 200  # Django's backend next
    assert [username for username, _ in backends.CALLS] == ["editor@example.com"] * 3
