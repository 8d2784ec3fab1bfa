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
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from realtime_auth.session import Identity

logger = logging.getLogger(__name__)

REVOKE_MESSAGE = "auth.revoke"


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


def _broadcast(group: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": REVOKE_MESSAGE, "group": group})
    except Exception:  # the write that caused it has committed; sockets still expire with their token
        logger.exception("could not broadcast a revocation to %s", group)


def end_session(user_id: Any, session_id: str | None) -> None:
    """Logout: after commit, every socket of that login session returns to the public role (TOKEN_EXPIRED)."""
    group = session_group(session_id) if session_id else user_group(user_id)
    transaction.on_commit(lambda: _broadcast(group))


def end_user(user_id: Any) -> None:
    """Deactivation or password change: spend the user's tokens, end all the user's sockets after commit."""
    from realtime_auth.tokens import revoke_user  # tokens imports the models; this module loads in ready()

    revoke_user(user_id)
    transaction.on_commit(lambda: _broadcast(user_group(user_id)))


def _remember_credentials(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if raw or instance.pk is None or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return
    old = sender._default_manager.filter(pk=instance.pk).values("password", "is_active").first()
    instance._likha_revoke = bool(
        old and (old["password"] != instance.password or (old["is_active"] and not instance.is_active))
    )


def _revoke_changed(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if not raw and not created and getattr(instance, "_likha_revoke", False):
        instance._likha_revoke = False
        logger.info("credentials of user %s changed: ending its sessions", instance.pk)
        end_user(instance.pk)


def connect_signals() -> None:
    user_model = get_user_model()
    pre_save.connect(_remember_credentials, sender=user_model, dispatch_uid="likha_revoke_pre")
    post_save.connect(_revoke_changed, sender=user_model, dispatch_uid="likha_revoke_post")
