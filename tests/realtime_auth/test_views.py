"""HTTP /auth/login, /auth/refresh, /auth/logout: exact shapes of PROTOCOL §9, through simplejwt."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from erp_demo.models import User
from tests.likha_realtime.http.test_server_info import PUBLIC_SHAPE

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor() -> User:
    return User.objects.create_user("editor@example.com", "editor-password")


def post(path: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    response = Client().post(path, body, content_type=content_type)
    return response.status_code, (response.json() if response.content else None)


def envelope(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def login() -> dict[str, Any]:
    status, body = post("/auth/login", {"email": "editor@example.com", "password": "editor-password"})
    assert status == 200, body
    return body["data"]


def test_login_returns_the_token_pair_and_the_access_lifetime_in_ms(editor: User) -> None:
    data = login()
    assert list(data) == ["access_token", "refresh_token", "expires"]
    assert data["expires"] == 15 * 60 * 1000
    access = AccessToken(data["access_token"])
    assert access["user_id"] == str(editor.pk)
    refresh = RefreshToken(data["refresh_token"])
    assert refresh["sid"] == access["sid"]


def test_login_is_case_insensitive_on_email(editor: User) -> None:
    status, _ = post("/auth/login", {"email": "Editor@Example.com", "password": "editor-password"})
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"email": "editor@example.com", "password": "wrong"},
        {"email": "nobody@example.com", "password": "editor-password"},
    ],
)
def test_bad_credentials_are_401_invalid_credentials(editor: User, body: dict[str, str]) -> None:
    assert post("/auth/login", body) == (401, envelope("INVALID_CREDENTIALS", "Invalid user credentials."))


def test_an_inactive_user_cannot_log_in(editor: User) -> None:
    editor.is_active = False
    editor.save()
    assert post("/auth/login", {"email": "editor@example.com", "password": "editor-password"}) == (
        401,
        envelope("INVALID_CREDENTIALS", "Invalid user credentials."),
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, ["email: This field is required.", "password: This field is required."]),
        ({"email": "editor@example.com"}, "password: This field is required."),
        ([1, 2], "Expected a JSON object."),
        ({"email": ["x"], "password": "p"}, "email: Not a valid string."),
    ],
)
def test_malformed_login_bodies_are_400_with_the_same_envelope(body: Any, message: str | list[str]) -> None:
    messages = message if isinstance(message, list) else [message]
    errors = [envelope("INVALID_PAYLOAD", text)["errors"][0] for text in messages]
    assert post("/auth/login", body) == (400, {"errors": errors})


def test_a_body_that_is_not_json_is_400() -> None:
    status, body = post("/auth/login", "{not json", content_type="application/json")
    assert status == 400
    assert body["errors"][0]["extensions"] == {"code": "INVALID_PAYLOAD"}
    assert body["errors"][0]["message"].startswith("JSON parse error")


def test_refresh_rotates_and_a_reused_token_is_401_invalid_token(editor: User) -> None:
    first = login()
    status, body = post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert status == 200
    assert list(body["data"]) == ["access_token", "refresh_token", "expires"]
    assert (
        RefreshToken(body["data"]["refresh_token"])["sid"] == RefreshToken(first["refresh_token"], verify=False)["sid"]
    )
    assert post("/auth/refresh", {"refresh_token": first["refresh_token"]}) == (
        401,
        envelope("INVALID_TOKEN", "Invalid token."),
    )


@pytest.mark.parametrize("field", ["access_token", "garbage"])
def test_refresh_refuses_anything_but_a_refresh_token(editor: User, field: str) -> None:
    token = login()["access_token"] if field == "access_token" else "garbage"
    assert post("/auth/refresh", {"refresh_token": token}) == (401, envelope("INVALID_TOKEN", "Invalid token."))


def test_refresh_refuses_a_token_of_a_deactivated_user(editor: User) -> None:
    refresh = login()["refresh_token"]
    User.objects.filter(pk=editor.pk).update(is_active=False)
    assert post("/auth/refresh", {"refresh_token": refresh}) == (401, envelope("INVALID_TOKEN", "Invalid token."))


def test_logout_blacklists_the_refresh_token(editor: User) -> None:
    refresh = login()["refresh_token"]
    assert post("/auth/logout", {"refresh_token": refresh}) == (204, None)
    assert post("/auth/refresh", {"refresh_token": refresh})[0] == 401
    assert post("/auth/logout", {"refresh_token": refresh}) == (401, envelope("INVALID_TOKEN", "Invalid token."))


def test_logout_needs_a_refresh_token() -> None:
    assert post("/auth/logout", {}) == (400, envelope("INVALID_PAYLOAD", "refresh_token: This field is required."))


def test_a_password_change_spends_every_refresh_token_of_the_user(editor: User) -> None:
    first, second = login()["refresh_token"], login()["refresh_token"]
    editor.set_password("another-password")
    editor.save()
    assert post("/auth/refresh", {"refresh_token": first})[0] == 401
    assert post("/auth/refresh", {"refresh_token": second})[0] == 401


def test_server_info_describes_the_sockets() -> None:
    response = Client().get("/server/info")
    assert response.json() == {"data": PUBLIC_SHAPE}


def test_logout_refuses_that_sessions_access_tokens_only(editor: User) -> None:
    from realtime_auth import tokens

    ended, other = login(), login()
    assert post("/auth/logout", {"refresh_token": ended["refresh_token"]})[0] == 204
    with pytest.raises(tokens.InvalidToken):
        tokens.verify_access(ended["access_token"])
    assert tokens.verify_access(other["access_token"]).user == editor


def test_a_password_change_refuses_the_access_tokens_of_every_session(editor: User) -> None:
    from realtime_auth import tokens

    first, second = login(), login()
    editor.set_password("another-password")
    editor.save()
    for pair in (first, second):
        with pytest.raises(tokens.InvalidToken):
            tokens.verify_access(pair["access_token"])
    fresh = post("/auth/login", {"email": "editor@example.com", "password": "another-password"})[1]["data"]
    assert tokens.verify_access(fresh["access_token"]).user == editor


def test_saving_a_user_without_credential_changes_revokes_nothing(editor: User) -> None:
    from realtime_auth import tokens

    pair = login()
    editor.first_name = "Eddie"
    editor.save()
    assert tokens.verify_access(pair["access_token"]).user == editor
    assert post("/auth/refresh", {"refresh_token": pair["refresh_token"]})[0] == 200


def test_reusing_a_spent_refresh_token_ends_its_session(editor: User) -> None:
    first = login()["refresh_token"]
    second = post("/auth/refresh", {"refresh_token": first})[1]["data"]
    # Someone replays the spent token (a stolen copy): refused, and the session it belongs to is over.
    assert post("/auth/refresh", {"refresh_token": first}) == (401, envelope("INVALID_TOKEN", "Invalid token."))
    assert post("/auth/refresh", {"refresh_token": second["refresh_token"]})[0] == 401
    from realtime_auth import tokens

    with pytest.raises(tokens.InvalidToken):
        tokens.verify_access(second["access_token"])


def test_logout_with_a_spent_refresh_token_still_ends_the_session(editor: User) -> None:
    first = login()["refresh_token"]
    stolen = post("/auth/refresh", {"refresh_token": first})[1]["data"]["refresh_token"]
    assert post("/auth/logout", {"refresh_token": first}) == (204, None)
    assert post("/auth/refresh", {"refresh_token": stolen})[0] == 401


def test_access_tokens_without_a_session_id_are_refused(editor: User) -> None:
    from realtime_auth import tokens

    stock = str(AccessToken.for_user(editor))  # signed with our key, but not issued by our login
    with pytest.raises(tokens.InvalidToken):
        tokens.verify_access(stock)


def test_a_password_rehash_on_login_is_not_a_password_change(editor: User) -> None:
    from realtime_auth import tokens

    pair = login()
    # What Django's check_password does when the hasher asks for an upgrade: same password, new hash.
    editor.set_password("editor-password")
    editor._password = None
    editor.save(update_fields=["password"])
    assert tokens.verify_access(pair["access_token"]).user == editor
    assert post("/auth/refresh", {"refresh_token": pair["refresh_token"]})[0] == 200


def test_emails_are_unique_whatever_their_case(editor: User) -> None:
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("EDITOR@example.com", "x-password")
    assert User.objects.get(pk=editor.pk).email == "editor@example.com"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "editor@example.com\x00", "password": "editor-password"},
        {"email": "editor@example.com", "password": "\ud800"},
    ],
    ids=["nul-in-email", "lone-surrogate"],
)
def test_unusable_text_in_credentials_is_refused_cleanly(editor: User, body: dict[str, str]) -> None:
    from realtime_auth import credentials, errors

    with pytest.raises(errors.AuthError):
        credentials.parse_credentials(body)


def test_http_login_with_unusable_text_is_a_400_not_a_crash(editor: User) -> None:
    status, body = post("/auth/login", '{"email":"editor@example.com","password":"\\ud800"}')
    assert (status, body) == (
        400,
        envelope("INVALID_PAYLOAD", "password: Surrogate characters are not allowed: U+D800."),
    )


def test_login_refuses_unusable_text_without_touching_the_database(editor: User) -> None:
    from realtime_auth import tokens

    for email, password in [("editor@example.com\x00", "editor-password"), ("editor@example.com", "\ud800")]:
        with pytest.raises(tokens.InvalidCredentials):
            tokens.login(email, password)
