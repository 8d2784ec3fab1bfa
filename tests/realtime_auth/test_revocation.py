"""Revocation broadcasts (realtime_auth.revocation) and when they happen (realtime_auth.signals), on the in-memory
channel layer: a socket's groups, ``auth.revoke``/``auth.reload`` sent after commit only, never on rollback."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher, make_password
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import override_settings

from erp_demo.models import User
from realtime_auth import revocation, tokens
from realtime_auth.errors import InvalidToken
from realtime_auth.models import RevokedSession
from realtime_auth.revocation import RELOAD_MESSAGE, REVOKE_MESSAGE, groups_for, session_group, user_group
from realtime_auth.session import Identity
from tests.realtime_auth.conftest import EDITOR_EMAIL, EDITOR_PASSWORD, Listener

SID = "0123456789abcdef0123456789abcdef"  # the shape of a real sid: uuid4().hex


def revoke(group: str) -> dict[str, str]:
    return {"type": REVOKE_MESSAGE, "group": group}


def reload(group: str) -> dict[str, str]:
    return {"type": RELOAD_MESSAGE, "group": group}


class Boom(Exception):
    pass


def rolled_back(work: Callable[[], object]) -> None:
    """Run ``work`` in a transaction (a savepoint when one is open) that then rolls back."""
    with transaction.atomic():
        work()
        raise Boom


# -- groups ------------------------------------------------------------------------------------------------------


def test_a_connection_in_the_public_role_listens_on_the_public_roles_group_only() -> None:
    assert groups_for(None) == {"likha.auth.public"}


def test_a_session_listens_on_its_users_group_and_its_sessions_group() -> None:
    identity = Identity(User(pk=7), expires_at=None, session_id=SID)
    assert groups_for(identity) == {"likha.auth.user.7", f"likha.auth.session.{SID}"}


def test_an_identity_without_a_session_listens_on_its_users_group_only() -> None:
    assert groups_for(Identity(User(pk=7), expires_at=None)) == {"likha.auth.user.7"}


def test_group_names_are_valid_channel_layer_group_names(listener: Listener) -> None:
    for group in groups_for(Identity(User(pk=2**63 - 1), expires_at=None, session_id=SID)):
        assert re.fullmatch(r"[a-zA-Z0-9._-]{1,99}", group), group
        assert listener.layer.require_valid_group_name(group)


# -- broadcasts after commit, in real transactions ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_end_session_broadcasts_to_that_session_after_commit_only(listener: Listener) -> None:
    session, user = listener.join(session_group(SID)), listener.join(user_group(7))

    with transaction.atomic():
        revocation.end_session(7, SID)
        assert listener.received(session) == []

    assert listener.received(session) == [revoke(session_group(SID))]
    assert listener.received(user) == []  # the user's other sessions stay


@pytest.mark.django_db(transaction=True)
def test_end_session_without_a_session_id_ends_every_socket_of_the_user(listener: Listener) -> None:
    user = listener.join(user_group(7))
    with transaction.atomic():
        revocation.end_session(7, None)
        assert listener.received(user) == []
    assert listener.received(user) == [revoke(user_group(7))]


@pytest.mark.django_db(transaction=True)
def test_end_session_outside_a_transaction_broadcasts_at_once(listener: Listener) -> None:
    session = listener.join(session_group(SID))
    revocation.end_session(7, SID)
    assert listener.received(session) == [revoke(session_group(SID))]


@pytest.mark.django_db(transaction=True)
def test_reload_users_broadcasts_once_per_user_after_commit_only(listener: Listener) -> None:
    seven, eight, nine = (listener.join(user_group(pk)) for pk in (7, 8, 9))

    with transaction.atomic():
        revocation.reload_users([7, 8, 7])
        assert listener.received(seven) == listener.received(eight) == []

    assert listener.received(seven) == [reload(user_group(7))]
    assert listener.received(eight) == [reload(user_group(8))]
    assert listener.received(nine) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "announce",
    [
        pytest.param(lambda: revocation.end_session(7, SID), id="end_session"),
        pytest.param(lambda: revocation.end_session(7, None), id="end_session without sid"),
        pytest.param(lambda: revocation.reload_users([7]), id="reload_users"),
    ],
)
def test_nothing_is_broadcast_when_the_transaction_rolls_back(listener: Listener, announce: Callable[[], None]) -> None:
    channel = listener.join(session_group(SID), user_group(7))

    with pytest.raises(Boom):
        rolled_back(announce)

    revocation.reload_users([8])  # a later commit does not run the rolled-back work either
    assert listener.received(channel) == []


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_drops_its_broadcast_but_not_the_outer_ones(listener: Listener) -> None:
    channel = listener.join(session_group(SID), user_group(7))

    with transaction.atomic():
        revocation.reload_users([7])
        with pytest.raises(Boom):
            rolled_back(lambda: revocation.end_session(7, SID))

    assert listener.received(channel) == [reload(user_group(7))]


def test_a_broadcast_without_a_channel_layer_does_nothing() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        revocation.broadcast(user_group(7))  # no error


def test_a_failed_broadcast_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    class BrokenLayer:
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            raise ConnectionError("redis is down")

    monkeypatch.setattr(revocation, "get_channel_layer", BrokenLayer)
    with caplog.at_level(logging.ERROR, logger="realtime_auth.revocation"):
        revocation.broadcast(user_group(7))
    assert [record.getMessage() for record in caplog.records] == [
        f"could not broadcast {REVOKE_MESSAGE} to {user_group(7)}"
    ]


# -- signals: what ends or reloads a user's sockets -------------------------------------------------------------


def still_valid(pair: tokens.TokenPair) -> bool:
    try:
        tokens.verify_access(pair.access)
    except InvalidToken:
        return False
    return True


def change_password(user: User) -> None:
    user.set_password("a-new-password")
    user.save()


def change_password_only(user: User) -> None:
    user.set_password("a-new-password")
    user.save(update_fields=["password"])


def deactivate(user: User) -> None:
    user.is_active = False
    user.save()


def deactivate_only(user: User) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


@pytest.mark.django_db
@pytest.mark.parametrize("change", [change_password, change_password_only, deactivate, deactivate_only])
def test_a_password_change_or_deactivation_revokes_every_session_after_commit(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any, change: Callable[[User], None]
) -> None:
    sessions = [tokens.issue_pair(editor), tokens.issue_pair(editor)]
    channel = listener.join(user_group(editor.pk))

    with django_capture_on_commit_callbacks(execute=True):
        change(editor)
        assert listener.received(channel) == []

    assert listener.received(channel) == [revoke(user_group(editor.pk))]
    assert set(RevokedSession.objects.values_list("session_id", flat=True)) == {p.session_id for p in sessions}
    assert not any(still_valid(pair) for pair in sessions)


def make_superuser(user: User) -> None:
    user.is_superuser = True
    user.save()


def make_superuser_only(user: User) -> None:
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])


def make_staff(user: User) -> None:
    user.is_staff = True
    user.save()


@pytest.mark.django_db
@pytest.mark.parametrize("change", [make_superuser, make_superuser_only, make_staff])
def test_a_superuser_or_staff_flag_change_reloads_the_users_sockets_after_commit(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any, change: Callable[[User], None]
) -> None:
    pair = tokens.issue_pair(editor)
    channel = listener.join(user_group(editor.pk))

    with django_capture_on_commit_callbacks(execute=True):
        change(editor)
        assert listener.received(channel) == []

    assert listener.received(channel) == [reload(user_group(editor.pk))]
    assert still_valid(pair) and not RevokedSession.objects.exists()


@pytest.mark.django_db
def test_taking_the_superuser_flag_away_reloads_too(
    admin: User, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    channel = listener.join(user_group(admin.pk))
    with django_capture_on_commit_callbacks(execute=True):
        admin.is_superuser = False
        admin.save()
    assert listener.received(channel) == [reload(user_group(admin.pk))]


def rename(user: User) -> None:
    user.first_name = "Eddie"
    user.save()


def rename_only(user: User) -> None:
    user.first_name = "Eddie"
    user.save(update_fields=["first_name"])


def save_unchanged(user: User) -> None:
    user.save()


@pytest.mark.django_db
@pytest.mark.parametrize("change", [rename, rename_only, save_unchanged])
def test_other_saves_of_a_user_end_and_reload_nothing(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any, change: Callable[[User], None]
) -> None:
    pair = tokens.issue_pair(editor)
    channel = listener.join(user_group(editor.pk))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        change(editor)
    assert callbacks == []
    assert listener.received(channel) == []
    assert still_valid(pair)


@pytest.mark.django_db
def test_a_change_rolled_back_revokes_nothing_and_broadcasts_nothing(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    pair = tokens.issue_pair(editor)
    channel = listener.join(user_group(editor.pk))

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Boom):
        rolled_back(lambda: change_password(editor))

    assert callbacks == []

    assert listener.received(channel) == []
    assert still_valid(pair) and not RevokedSession.objects.exists()


@pytest.mark.django_db
def test_deleting_a_user_ends_its_sockets_after_commit(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    pk = editor.pk
    channel = listener.join(user_group(pk))
    with django_capture_on_commit_callbacks(execute=True):
        editor.delete()
        assert listener.received(channel) == []
    assert listener.received(channel) == [revoke(user_group(pk))]


@pytest.mark.django_db
def test_creating_a_user_broadcasts_nothing(listener: Listener, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        User.objects.create_user("new@example.com", "new-password")
    assert callbacks == []


@pytest.fixture
def editors(editor: User) -> Group:
    group = Group.objects.create(name="Editors")
    group.user_set.add(editor)
    return group


@pytest.fixture
def permission() -> Permission:
    return Permission.objects.get(content_type__app_label="erp_demo", codename="view_user")


def join_viewers(user: User, editors: Group, permission: Permission) -> None:
    user.groups.add(Group.objects.create(name="Viewers"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(join_viewers, id="user.groups.add"),
        pytest.param(lambda user, editors, perm: user.groups.remove(editors), id="user.groups.remove"),
        pytest.param(lambda user, editors, perm: user.groups.clear(), id="user.groups.clear"),
        pytest.param(lambda user, editors, perm: editors.user_set.remove(user), id="group.user_set.remove"),
        pytest.param(lambda user, editors, perm: editors.user_set.clear(), id="group.user_set.clear"),
        pytest.param(lambda user, editors, perm: editors.delete(), id="group deleted"),
        pytest.param(lambda user, editors, perm: user.user_permissions.add(perm), id="user.user_permissions.add"),
    ],
)
def test_a_change_of_one_users_groups_or_permissions_reloads_that_user(
    editor: User,
    admin: User,
    editors: Group,
    permission: Permission,
    listener: Listener,
    django_capture_on_commit_callbacks: Any,
    change: Callable[[User, Group, Permission], None],
) -> None:
    mine, theirs = listener.join(user_group(editor.pk)), listener.join(user_group(admin.pk))
    pair = tokens.issue_pair(editor)

    with django_capture_on_commit_callbacks(execute=True):
        change(editor, editors, permission)
        assert listener.received(mine) == []

    assert listener.received(mine) == [reload(user_group(editor.pk))]
    assert listener.received(theirs) == []
    assert still_valid(pair)


@pytest.mark.django_db
def test_adding_a_user_to_a_group_from_the_groups_side_reloads_that_user(
    admin: User, editors: Group, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    channel = listener.join(user_group(admin.pk))
    with django_capture_on_commit_callbacks(execute=True):
        editors.user_set.add(admin)
    assert listener.received(channel) == [reload(user_group(admin.pk))]


@pytest.mark.django_db
def test_a_change_of_a_groups_permissions_reloads_every_member(
    editor: User,
    admin: User,
    editors: Group,
    permission: Permission,
    listener: Listener,
    django_capture_on_commit_callbacks: Any,
) -> None:
    other = User.objects.create_user("other@example.com", "other-password")
    editors.user_set.add(other)
    members = {pk: listener.join(user_group(pk)) for pk in (editor.pk, other.pk)}
    outsider = listener.join(user_group(admin.pk))

    with django_capture_on_commit_callbacks(execute=True):
        editors.permissions.add(permission)

    for pk, channel in members.items():
        assert listener.received(channel) == [reload(user_group(pk))]
    assert listener.received(outsider) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda editors, perm: perm.group_set.add(editors), id="permission.group_set.add"),
        pytest.param(lambda editors, perm: perm.group_set.remove(editors), id="permission.group_set.remove"),
        pytest.param(lambda editors, perm: perm.group_set.clear(), id="permission.group_set.clear"),
        pytest.param(lambda editors, perm: editors.permissions.clear(), id="group.permissions.clear"),
    ],
)
def test_a_change_from_the_permissions_side_reloads_the_groups_members(
    request: pytest.FixtureRequest,
    editor: User,
    admin: User,
    editors: Group,
    permission: Permission,
    listener: Listener,
    django_capture_on_commit_callbacks: Any,
    change: Callable[[Group, Permission], None],
) -> None:
    if request.node.callspec.id != "permission.group_set.add":
        editors.permissions.add(permission)
    mine, theirs = listener.join(user_group(editor.pk)), listener.join(user_group(admin.pk))
    public = listener.join(revocation.PUBLIC_GROUP)

    with django_capture_on_commit_callbacks(execute=True):
        change(editors, permission)

    assert listener.received(mine) == [reload(user_group(editor.pk))]
    assert listener.received(theirs) == []
    assert listener.received(public) == []  # not the public role's group


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda user, perm: perm.user_set.add(user), id="permission.user_set.add"),
        pytest.param(lambda user, perm: perm.user_set.remove(user), id="permission.user_set.remove"),
        pytest.param(lambda user, perm: perm.user_set.clear(), id="permission.user_set.clear"),
        pytest.param(lambda user, perm: user.user_permissions.clear(), id="user.user_permissions.clear"),
    ],
)
def test_a_users_own_permission_changed_from_either_side_reloads_that_user(
    request: pytest.FixtureRequest,
    editor: User,
    admin: User,
    permission: Permission,
    listener: Listener,
    django_capture_on_commit_callbacks: Any,
    change: Callable[[User, Permission], None],
) -> None:
    if request.node.callspec.id != "permission.user_set.add":
        editor.user_permissions.add(permission)
    mine, theirs = listener.join(user_group(editor.pk)), listener.join(user_group(admin.pk))

    with django_capture_on_commit_callbacks(execute=True):
        change(editor, permission)

    assert listener.received(mine) == [reload(user_group(editor.pk))]
    assert listener.received(theirs) == []


def make_public(permission: Permission) -> Group:
    group = Group.objects.create(name="Public")
    group.permissions.add(permission)
    return group


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda public, perm: public.permissions.remove(perm), id="public.permissions.remove"),
        pytest.param(lambda public, perm: public.permissions.clear(), id="public.permissions.clear"),
        pytest.param(
            lambda public, perm: public.permissions.add(
                Permission.objects.get(content_type__app_label="erp_demo", codename="add_user")
            ),
            id="public.permissions.add",
        ),
        pytest.param(lambda public, perm: perm.group_set.remove(public), id="permission.group_set.remove"),
        pytest.param(lambda public, perm: public.delete(), id="public group deleted"),
        pytest.param(lambda public, perm: setattr(public, "name", "Old public") or public.save(), id="renamed away"),
        pytest.param(lambda public, perm: _take_the_name(public), id="another group renamed to Public"),
    ],
)
def test_a_change_of_the_public_roles_rights_reloads_the_public_roles_sockets(
    editor: User,
    permission: Permission,
    listener: Listener,
    django_capture_on_commit_callbacks: Any,
    change: Callable[[Group, Permission], None],
) -> None:
    public = make_public(permission)
    channel = listener.join(revocation.PUBLIC_GROUP)
    users = listener.join(user_group(editor.pk))

    with django_capture_on_commit_callbacks(execute=True):
        change(public, permission)
        assert listener.received(channel) == []  # after commit only

    assert listener.received(channel) == [reload(revocation.PUBLIC_GROUP)]
    assert listener.received(users) == []


def _take_the_name(public: Group) -> None:
    Group.objects.filter(pk=public.pk).update(name="Former public")  # no signal: only the rename below counts
    _rename(Group.objects.create(name="Newcomers"), "Public")


def _rename(group: Group, name: str) -> None:
    group.name = name
    group.save()


@pytest.mark.django_db
def test_other_group_saves_do_not_reload_the_public_role(
    permission: Permission, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    public = make_public(permission)
    channel = listener.join(revocation.PUBLIC_GROUP)

    with django_capture_on_commit_callbacks(execute=True):
        public.save()  # same name
        Group.objects.create(name="Public relations")
        other = Group.objects.create(name="Other")
        other.permissions.add(permission)
        _rename(other, "Still other")

    assert listener.received(channel) == []


@pytest.mark.django_db
@override_settings(LIKHA_REALTIME={"PUBLIC_ROLE": "Guests"})
def test_the_public_role_is_the_group_the_setting_names(
    permission: Permission, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    channel = listener.join(revocation.PUBLIC_GROUP)
    public, guests = make_public(permission), Group.objects.create(name="Guests")

    with django_capture_on_commit_callbacks(execute=True):
        public.permissions.clear()
    assert listener.received(channel) == []
    with django_capture_on_commit_callbacks(execute=True):
        guests.permissions.add(permission)
    assert listener.received(channel) == [reload(revocation.PUBLIC_GROUP)]


class OldMD5PasswordHasher(MD5PasswordHasher):
    """An outdated hasher: a login with a password it hashed makes Django re-hash it with the preferred one."""

    algorithm = "old_md5"


@pytest.mark.django_db
def test_a_hasher_upgrade_on_login_revokes_nothing(
    editor: User, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher", f"{__name__}.OldMD5PasswordHasher"]
    with override_settings(PASSWORD_HASHERS=hashers):
        User.objects.filter(pk=editor.pk).update(password=make_password(EDITOR_PASSWORD, hasher="old_md5"))
        pair = tokens.issue_pair(editor)
        channel = listener.join(user_group(editor.pk))

        with django_capture_on_commit_callbacks(execute=True):
            tokens.login(EDITOR_EMAIL, EDITOR_PASSWORD)

    editor.refresh_from_db()
    assert editor.password.startswith("md5$")  # the upgrade happened: Django saved the re-hashed password
    assert listener.received(channel) == []
    assert still_valid(pair) and not RevokedSession.objects.exists()
