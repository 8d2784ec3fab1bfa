"""Revocation (PROTOCOL §3): logout, deactivation and password changes end sockets on every server process.

Each authenticated socket joins two channel-layer groups, one for its login session (the ``sid`` claim) and one
for its user; a revocation is one ``group_send`` of ``auth.revoke`` to the matching group, sent after commit.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from realtime_auth.session import Identity

logger = logging.getLogger(__name__)

REVOKE_MESSAGE = "auth.revoke"
RELOAD_MESSAGE = "auth.reload"


def session_group(session_id: str) -> str:
    return f"likha.auth.session.{session_id}"


def user_group(user_id: Any) -> str:
    return f"likha.auth.user.{user_id}"


def groups_for(identity: Identity | None) -> set[str]:
    if identity is None:
        return set()
    groups = {user_group(identity.user.pk)}
    if identity.session_id:
        groups.add(session_group(identity.session_id))
    return groups


def _broadcast(group: str, kind: str = REVOKE_MESSAGE) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": kind, "group": group})
    except Exception:  # the write that caused it has committed; sockets still expire with their token
        logger.exception("could not broadcast %s to %s", kind, group)


def end_session(user_id: Any, session_id: str | None) -> None:
    """Logout: after commit, every socket of that login session returns to the public role (TOKEN_EXPIRED)."""
    group = session_group(session_id) if session_id else user_group(user_id)
    transaction.on_commit(lambda: _broadcast(group))


def end_user(user_id: Any) -> None:
    """Deactivation, deletion or password change: spend the user's tokens, end all its sockets after commit."""
    from realtime_auth.tokens import revoke_user  # tokens imports the models; this module loads in ready()

    revoke_user(user_id)
    transaction.on_commit(lambda: _broadcast(user_group(user_id)))


def reload_users(user_ids: Any) -> None:
    """Rights changed (superuser flag, groups, permissions): sockets of these users re-read them after commit."""
    groups = [user_group(pk) for pk in set(user_ids)]
    transaction.on_commit(lambda: [_broadcast(group, RELOAD_MESSAGE) for group in groups])


_WATCHED = ("password", "is_active", "is_superuser", "is_staff")


def _remember_credentials(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    instance._likha_change = None
    if raw or instance.pk is None or (update_fields is not None and not set(_WATCHED) & set(update_fields)):
        return
    if update_fields is not None and set(update_fields) == {"password"} and getattr(instance, "_password", 1) is None:
        return  # Django re-hashing the same password on login (a hasher upgrade) is not a password change
    old = sender._default_manager.filter(pk=instance.pk).values(*_WATCHED).first()
    if old is None:
        return
    if old["password"] != instance.password or (old["is_active"] and not instance.is_active):
        instance._likha_change = "revoke"
    elif old["is_superuser"] != instance.is_superuser or old["is_staff"] != instance.is_staff:
        instance._likha_change = "reload"


def _after_save(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    change, instance._likha_change = getattr(instance, "_likha_change", None), None
    if raw or created or change is None:
        return
    if change == "revoke":
        logger.info("credentials of user %s changed: ending its sessions", instance.pk)
        end_user(instance.pk)
    else:
        reload_users([instance.pk])


def _after_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    pk = instance.pk
    transaction.on_commit(lambda: _broadcast(user_group(pk)))


def _membership_changed(sender: Any, instance: Any, action: str, pk_set: Any, reverse: bool, **kwargs: Any) -> None:
    if not action.startswith("post_"):
        return
    user_model = get_user_model()
    if isinstance(instance, user_model):  # user.groups / user.user_permissions changed
        reload_users([instance.pk])
    elif isinstance(instance, Group):  # group.permissions changed, or group.user_set changed
        members = set(instance.user_set.values_list("pk", flat=True)) | (set(pk_set or ()) if reverse else set())
        reload_users(members)


def connect_signals() -> None:
    user_model = get_user_model()
    pre_save.connect(_remember_credentials, sender=user_model, dispatch_uid="likha_revoke_pre")
    post_save.connect(_after_save, sender=user_model, dispatch_uid="likha_revoke_post")
    post_delete.connect(_after_delete, sender=user_model, dispatch_uid="likha_revoke_delete")
    for through in (user_model.groups.through, user_model.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(_membership_changed, sender=through, dispatch_uid=f"likha_reload_{through.__name__}")
