"""When credentials or rights change: user saves, deletes and group or permission changes end or reload sockets."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from realtime_auth import revocation
from realtime_auth.conf import auth_settings
from realtime_auth.tokens import revoke_user

logger = logging.getLogger(__name__)


def end_user(user_id: Any) -> None:
    """Deactivation, deletion or password change: spend the user's tokens, end all its sockets after commit."""
    revoke_user(user_id)
    transaction.on_commit(lambda: revocation.broadcast(revocation.user_group(user_id)))


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
        revocation.reload_users([instance.pk])


def _after_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    pk = instance.pk
    transaction.on_commit(lambda: revocation.broadcast(revocation.user_group(pk)))


def _membership_changed(sender: Any, instance: Any, action: str, pk_set: Any, reverse: bool, **kwargs: Any) -> None:
    """A change of who is in a group or of who holds a permission, from either side of the relation."""
    if action == "pre_clear":  # x.related.clear() names no keys afterwards: remember who is affected, first
        instance._likha_cleared = _related_keys(sender, instance)
        return
    if not action.startswith("post_"):
        return
    keys: set[Any] = set(pk_set or ()) | instance.__dict__.pop("_likha_cleared", set())
    user_model = get_user_model()
    if isinstance(instance, user_model):  # user.groups / user.user_permissions changed
        revocation.reload_users([instance.pk])
    elif isinstance(instance, Group):  # group.permissions changed, or group.user_set changed
        if sender is Group.permissions.through and _is_public(instance):
            revocation.reload_public()
        revocation.reload_users(_members(instance) | (keys if sender is user_model.groups.through else set()))
    elif isinstance(instance, Permission):  # permission.group_set / permission.user_set changed
        if sender is Group.permissions.through:
            groups = Group.objects.filter(pk__in=keys)
            if any(_is_public(group) for group in groups):
                revocation.reload_public()
            members = user_model._default_manager.filter(groups__in=groups).values_list("pk", flat=True)
            revocation.reload_users(set(members))
        else:
            revocation.reload_users(keys)


def _related_keys(sender: Any, instance: Any) -> set[Any]:
    """The keys on the other side of ``instance``'s relation through ``sender`` (before a clear)."""
    if isinstance(instance, Group):
        if sender is Group.permissions.through:
            return set()  # the members are read afterwards; the permissions themselves do not matter
        return _members(instance)
    if isinstance(instance, Permission):
        if sender is Group.permissions.through:
            return set(instance.group_set.values_list("pk", flat=True))
        return set(instance.user_set.values_list("pk", flat=True))
    return set()


def _members(group: Group) -> set[Any]:
    return set(group.user_set.values_list("pk", flat=True))


def _is_public(group: Group) -> bool:
    return bool(group.name == auth_settings.PUBLIC_ROLE)


def _group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    """A deleted group's members lose its permissions (the cascade sends no ``m2m_changed``)."""
    if _is_public(instance):
        revocation.reload_public()
    revocation.reload_users(_members(instance))


def _remember_group_name(sender: Any, instance: Group, raw: bool = False, **kwargs: Any) -> None:
    old = None
    if not raw and instance.pk is not None:
        old = Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first()
    instance._likha_old_name = old  # type: ignore[attr-defined]  # read by _group_saved


def _group_saved(sender: Any, instance: Group, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """A group renamed to or from the public role's name changes the public role's rights."""
    old = instance.__dict__.pop("_likha_old_name", None)
    if raw or created or old == instance.name:
        return
    if auth_settings.PUBLIC_ROLE in (old, instance.name):
        revocation.reload_public()


def connect_signals() -> None:
    user_model = get_user_model()
    pre_save.connect(_remember_credentials, sender=user_model, dispatch_uid="likha_revoke_pre")
    post_save.connect(_after_save, sender=user_model, dispatch_uid="likha_revoke_post")
    post_delete.connect(_after_delete, sender=user_model, dispatch_uid="likha_revoke_delete")
    pre_delete.connect(_group_deleted, sender=Group, dispatch_uid="likha_reload_group_delete")
    pre_save.connect(_remember_group_name, sender=Group, dispatch_uid="likha_reload_group_name_pre")
    post_save.connect(_group_saved, sender=Group, dispatch_uid="likha_reload_group_name")
    for through in (user_model.groups.through, user_model.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(_membership_changed, sender=through, dispatch_uid=f"likha_reload_{through.__name__}")
