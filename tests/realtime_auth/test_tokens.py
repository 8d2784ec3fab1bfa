"""Token issuance, rotation, logout and verification (realtime_auth.tokens), straight through simplejwt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from erp_demo.models import User
from realtime_auth import tokens
from realtime_auth.errors import InvalidCredentials, InvalidToken
from realtime_auth.models import RevokedSession
from realtime_auth.revocation import REVOKE_MESSAGE, session_group
from tests.realtime_auth.conftest import EDITOR_EMAIL, EDITOR_PASSWORD, Listener

pytestmark = pytest.mark.django_db


def jti(raw: str) -> str:
    return RefreshToken(raw, verify=False)["jti"]


def spent(raw_refresh: str) -> bool:
    return BlacklistedToken.objects.filter(token__jti=jti(raw_refresh)).exists()


def refused(raw_access: Any) -> bool:
    try:
        tokens.verify_access(raw_access)
    except InvalidToken:
        return True
    return False


def accepted(raw_access: str) -> bool:
    return not refused(raw_access)


# -- login -------------------------------------------------------------------------------------------------------


def test_login_issues_a_pair_of_one_new_session(editor: User) -> None:
    user, pair = tokens.login(EDITOR_EMAIL, EDITOR_PASSWORD)

    assert user.pk == editor.pk
    access, refresh = AccessToken(pair.access), RefreshToken(pair.refresh)
    assert access["user_id"] == str(editor.pk)
    assert access["sid"] == refresh["sid"] == pair.session_id
    assert len(pair.session_id or "") == 32
    assert pair.access_expires_at == access["exp"]
    assert pair.access_lifetime_ms == 15 * 60 * 1000
    assert OutstandingToken.objects.filter(jti=refresh["jti"], user=editor).exists()
    assert pair.access not in repr(pair) and pair.refresh not in repr(pair)  # never a token in a log line


def test_every_login_is_a_session_of_its_own(editor: User) -> None:
    _, first = tokens.login(EDITOR_EMAIL, EDITOR_PASSWORD)
    _, second = tokens.login(EDITOR_EMAIL, EDITOR_PASSWORD)
    assert first.session_id != second.session_id


def test_login_matches_the_email_in_any_case(editor: User) -> None:
    user, _ = tokens.login("Editor@Example.COM", EDITOR_PASSWORD)
    assert user.pk == editor.pk


@pytest.mark.parametrize(
    ("email", "password"),
    [
        (EDITOR_EMAIL, "wrong-password"),
        ("nobody@example.com", EDITOR_PASSWORD),
        (EDITOR_EMAIL, ""),
        ("", EDITOR_PASSWORD),
        (None, EDITOR_PASSWORD),
        (EDITOR_EMAIL, None),
        ([EDITOR_EMAIL], EDITOR_PASSWORD),
        (EDITOR_EMAIL, 12345678),
        (EDITOR_EMAIL, "editor-pass\x00word"),
        (EDITOR_EMAIL, "\ud800"),
        (EDITOR_EMAIL, "x" * 4097),
    ],
)
def test_login_refuses_anything_but_the_right_email_and_password(editor: User, email: Any, password: Any) -> None:
    with pytest.raises(InvalidCredentials) as refusal:
        tokens.login(email, password)
    assert (refusal.value.http_code, refusal.value.http_message) == ("INVALID_CREDENTIALS", "Invalid user credentials.")
    assert not OutstandingToken.objects.exists()


def test_an_inactive_user_cannot_log_in(editor: User) -> None:
    User.objects.filter(pk=editor.pk).update(is_active=False)
    with pytest.raises(InvalidCredentials):
        tokens.login(EDITOR_EMAIL, EDITOR_PASSWORD)


# -- rotation ----------------------------------------------------------------------------------------------------


def test_rotate_spends_the_refresh_token_and_keeps_the_session(editor: User) -> None:
    first = tokens.issue_pair(editor)

    user, second = tokens.rotate(first.refresh)

    assert user.pk == editor.pk
    assert second.session_id == first.session_id
    assert jti(second.refresh) != jti(first.refresh)
    assert spent(first.refresh) and not spent(second.refresh)
    assert tokens.verify_access(second.access).session_id == first.session_id
    _, third = tokens.rotate(second.refresh)  # the chain goes on
    assert third.session_id == first.session_id


def test_reusing_a_spent_refresh_token_ends_its_whole_session_after_commit(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    stolen = tokens.issue_pair(editor)
    other_session = tokens.issue_pair(editor)
    channel = listener.join(session_group(stolen.session_id or ""))
    _, rotated = tokens.rotate(stolen.refresh)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(InvalidToken):
            tokens.rotate(stolen.refresh)  # the thief (or the owner) replays the spent token
        assert listener.received(channel) == []  # nothing before commit

    assert len(callbacks) == 1
    assert listener.received(channel) == [{"type": REVOKE_MESSAGE, "group": session_group(stolen.session_id or "")}]
    assert RevokedSession.objects.filter(session_id=stolen.session_id).exists()
    for access in (stolen.access, rotated.access):
        assert refused(access)
    with pytest.raises(InvalidToken):
        tokens.rotate(rotated.refresh)
    assert accepted(other_session.access)
    tokens.rotate(other_session.refresh)


def stock_refresh(user: User) -> str:
    """A refresh token of simplejwt's own views: no ``sid`` claim."""
    return str(RefreshToken.for_user(user))


def expired_refresh(user: User) -> str:
    refresh = tokens.SessionRefreshToken.for_user(user)
    refresh.set_exp(from_time=refresh.current_time - timedelta(days=30))
    return str(refresh)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(lambda user: tokens.issue_pair(user).access, id="an access token"),
        pytest.param(stock_refresh, id="a refresh token without sid"),
        pytest.param(expired_refresh, id="an expired refresh token"),
        pytest.param(lambda user: tokens.issue_pair(user).refresh[:-2] + "xx", id="a bad signature"),
        pytest.param(lambda user: "garbage", id="garbage"),
        pytest.param(lambda user: tokens.issue_pair(user).refresh + "é", id="non-ASCII"),
        pytest.param(lambda user: None, id="None"),
        pytest.param(lambda user: "", id="empty"),
    ],
)
def test_rotate_refuses_anything_but_a_live_refresh_token_of_a_session(
    editor: User, raw: Callable[[User], Any]
) -> None:
    with pytest.raises(InvalidToken):
        tokens.rotate(raw(editor))


def test_rotate_refuses_a_token_of_a_revoked_session(editor: User) -> None:
    pair = tokens.issue_pair(editor)
    _, rotated = tokens.rotate(pair.refresh)
    tokens.revoke(rotated.refresh)
    with pytest.raises(InvalidToken):
        tokens.rotate(rotated.refresh)


def test_rotate_refuses_a_token_of_a_deactivated_user(editor: User) -> None:
    pair = tokens.issue_pair(editor)
    User.objects.filter(pk=editor.pk).update(is_active=False)
    with pytest.raises(InvalidToken):
        tokens.rotate(pair.refresh)
    assert not spent(pair.refresh)  # refused before anything was spent


# -- logout ------------------------------------------------------------------------------------------------------


def test_revoke_spends_the_token_and_refuses_its_sessions_access_tokens(editor: User) -> None:
    pair = tokens.issue_pair(editor)
    other = tokens.issue_pair(editor)

    assert tokens.revoke(pair.refresh) == (str(editor.pk), pair.session_id)

    assert spent(pair.refresh)
    assert RevokedSession.objects.filter(session_id=pair.session_id).exists()
    assert refused(pair.access)
    assert tokens.is_revoked(pair.session_id or "")
    assert accepted(other.access) and not tokens.is_revoked(other.session_id or "")


def test_a_session_logged_out_cannot_be_logged_out_again(editor: User) -> None:
    pair = tokens.issue_pair(editor)
    tokens.revoke(pair.refresh)
    with pytest.raises(InvalidToken):
        tokens.revoke(pair.refresh)


def test_a_spent_refresh_token_still_logs_its_session_out(editor: User) -> None:
    pair = tokens.issue_pair(editor)
    _, rotated = tokens.rotate(pair.refresh)  # the owner's copy is spent; someone else holds `rotated`

    assert tokens.revoke(pair.refresh) == (str(editor.pk), pair.session_id)

    assert refused(rotated.access)
    with pytest.raises(InvalidToken):
        tokens.rotate(rotated.refresh)


@pytest.mark.parametrize("raw", ["garbage", "", None, 42])
def test_revoke_refuses_what_is_not_a_refresh_token(editor: User, raw: Any) -> None:
    with pytest.raises(InvalidToken):
        tokens.revoke(raw)


def test_revoke_user_ends_every_session_of_that_user_only(editor: User, admin: User) -> None:
    sessions = [tokens.issue_pair(editor), tokens.issue_pair(editor)]
    _, rotated = tokens.rotate(sessions[1].refresh)
    bystander = tokens.issue_pair(admin)

    tokens.revoke_user(editor.pk)

    assert set(RevokedSession.objects.values_list("session_id", flat=True)) == {p.session_id for p in sessions}
    for pair in (*sessions, rotated):
        assert refused(pair.access)
        assert spent(pair.refresh)
    with pytest.raises(InvalidToken):
        tokens.rotate(rotated.refresh)
    assert accepted(bystander.access) and not spent(bystander.refresh)


def test_revoke_user_of_a_user_without_sessions_does_nothing(editor: User) -> None:
    tokens.revoke_user(editor.pk)
    assert not RevokedSession.objects.exists()


# -- verification ------------------------------------------------------------------------------------------------


def test_verify_access_returns_the_user_the_expiry_and_the_session(editor: User) -> None:
    pair = tokens.issue_pair(editor)

    verified = tokens.verify_access(pair.access)

    assert (verified.user.pk, verified.expires_at, verified.session_id) == (
        editor.pk,
        pair.access_expires_at,
        pair.session_id,
    )


def revoked_session(user: User) -> str:
    pair = tokens.issue_pair(user)
    tokens.revoke(pair.refresh)
    return pair.access


def without_sid(user: User) -> str:
    """A valid access token of simplejwt's own views: it names no session, so it could never be revoked."""
    return str(AccessToken.for_user(user))


def expired_access(user: User) -> str:
    access = tokens.SessionRefreshToken.for_user(user).access_token
    access.set_exp(from_time=access.current_time - timedelta(hours=1))
    return str(access)


def over_long(user: User) -> str:
    """A correctly signed access token of a live session, padded by a claim to more than 4 KiB."""
    access = tokens.SessionRefreshToken.for_user(user).access_token
    access["padding"] = "x" * 4096
    raw = str(access)
    assert len(raw) > 4096 and AccessToken(raw)["padding"]  # valid but for its length
    return raw


def deleted_user(user: User) -> str:
    raw = tokens.issue_pair(user).access
    User.objects.filter(pk=user.pk).delete()
    return raw


def deactivated_user(user: User) -> str:
    raw = tokens.issue_pair(user).access
    User.objects.filter(pk=user.pk).update(is_active=False)
    return raw


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(revoked_session, id="a revoked session"),
        pytest.param(without_sid, id="no sid claim"),
        pytest.param(expired_access, id="expired"),
        pytest.param(lambda user: tokens.issue_pair(user).refresh, id="a refresh token"),
        pytest.param(lambda user: tokens.issue_pair(user).access[:-2] + "xx", id="a bad signature"),
        pytest.param(lambda user: tokens.issue_pair(user).access + "é", id="non-ASCII"),
        pytest.param(lambda user: "é" * 10, id="non-ASCII only"),
        pytest.param(lambda user: tokens.issue_pair(user).access + "\x00", id="NUL"),
        pytest.param(over_long, id="over 4 KiB"),
        pytest.param(lambda user: "a" * 4097, id="over 4 KiB of junk"),
        pytest.param(deleted_user, id="a deleted user"),
        pytest.param(deactivated_user, id="a deactivated user"),
        pytest.param(lambda user: "", id="empty"),
        pytest.param(lambda user: None, id="None"),
        pytest.param(lambda user: 42, id="a number"),
        pytest.param(lambda user: tokens.issue_pair(user).access.encode(), id="bytes"),
    ],
)
def test_verify_access_refuses(editor: User, raw: Callable[[User], Any]) -> None:
    with pytest.raises(InvalidToken) as refusal:
        tokens.verify_access(raw(editor))
    assert (refusal.value.http_code, refusal.value.http_message) == ("INVALID_TOKEN", "Invalid token.")


def test_an_access_token_is_checked_in_one_query(editor: User, django_assert_num_queries: Any) -> None:
    """The session's revocation and the user are one read (an authenticated connect's only database work)."""
    pair = tokens.issue_pair(editor)
    with django_assert_num_queries(1):
        verified = tokens.verify_access(pair.access)
    assert verified.user == editor
    assert tokens.REVOKED_FLAG not in verified.user.__dict__  # the user as simplejwt's get_user gives it
    tokens.revoke(pair.refresh)
    with django_assert_num_queries(1), pytest.raises(InvalidToken):
        tokens.verify_access(pair.access)


class UsersElsewhere:
    """A host's database router that reads users from another database than realtime_auth's tables."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "users" if model is User else "default"


def test_users_in_another_database_are_checked_in_two_queries_with_the_same_answers(
    editor: User, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """No query joins a table of one database to another's: where the host routes users elsewhere, the session and
    the user are two reads."""
    monkeypatch.setattr(tokens, "router", UsersElsewhere())  # the decision only: the test has one database
    pair = tokens.issue_pair(editor)
    with django_assert_num_queries(2):
        assert tokens.verify_access(pair.access).user == editor
    assert refused(revoked_session(editor))
    assert refused(deactivated_user(editor))


def test_simplejwts_password_change_check_applies(editor: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """``CHECK_REVOKE_TOKEN``: an access token issued before the password changed is refused (simplejwt's own
    ``get_user`` check, which the one-query read keeps)."""
    from rest_framework_simplejwt import authentication
    from rest_framework_simplejwt import tokens as simplejwt_tokens

    # simplejwt's modules each hold the settings object they imported (its reload on setting_changed rebinds only
    # its own module's name): the one that get_user and token issuance read is switched on.
    assert authentication.api_settings is simplejwt_tokens.api_settings
    monkeypatch.setattr(authentication.api_settings, "CHECK_REVOKE_TOKEN", True)
    pair = tokens.issue_pair(editor)
    assert accepted(pair.access)
    User.objects.filter(pk=editor.pk).update(password="changed")
    assert refused(pair.access)


# -- text --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        ("a", True),
        ("pässwörd ✓", True),
        ("x" * 4096, True),
        ("", False),
        ("x" * 4097, False),
        ("a\x00b", False),
        ("\ud800", False),  # a lone surrogate: not UTF-8
        (None, False),
        (42, False),
        (b"bytes", False),
        (["a"], False),
    ],
)
def test_usable_text_is_a_non_empty_utf8_string_without_nul_of_at_most_4_kib(value: Any, usable: bool) -> None:
    assert tokens.usable_text(value) is usable
