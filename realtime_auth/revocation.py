"""Revocation broadcasts (PROTOCOL §3): the groups a socket listens on, and ending or reloading them after commit.

Each authenticated socket joins two channel-layer groups, one for its login session (the ``sid`` claim) and one
for its user; a revocation is one ``group_send`` of ``auth.revoke`` to the matching group, sent after commit, and a
change of rights one ``auth.reload``. Sockets in the public role join the public role's group, which hears an
``auth.reload`` when the public role's rights (its group's permissions) change. ``realtime_auth.signals``
decides when; this module only says how.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime_auth.session import Identity

logger = logging.getLogger(__name__)

REVOKE_MESSAGE = "auth.revoke"
RELOAD_MESSAGE = "auth.reload"


def session_group(session_id: str) -> str:
    return f"likha.auth.session.{session_id}"


def user_group(user_id: Any) -> str:
    return f"likha.auth.user.{user_id}"


PUBLIC_GROUP = "likha.auth.public"


def groups_for(identity: Identity | None) -> set[str]:
    """The groups of a socket holding ``identity`` (``None``: the public role)."""
    if identity is None:
        return {PUBLIC_GROUP}
    groups = {user_group(identity.user.pk)}
    if identity.session_id:
        groups.add(session_group(identity.session_id))
    return groups


def broadcast(group: str, kind: str = REVOKE_MESSAGE) -> None:
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
    transaction.on_commit(lambda: broadcast(group))


def reload_users(user_ids: Any) -> None:
    """Rights changed (superuser flag, groups, permissions): sockets of these users re-read them after commit."""
    groups = [user_group(pk) for pk in set(user_ids)]

    def send() -> None:
        for group in groups:
            broadcast(group, RELOAD_MESSAGE)

    transaction.on_commit(send)


def reload_public() -> None:
    """The public role's rights changed: sockets in that role re-read them after commit."""
    transaction.on_commit(lambda: broadcast(PUBLIC_GROUP, RELOAD_MESSAGE))
