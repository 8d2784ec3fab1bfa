"""When credentials or rights change: user saves, deletes and group or permission changes end or reload sockets.

The user model is the host's (``get_user_model()``). Saves watch the fields it has of ``password``, ``is_active``,
``is_superuser`` and ``is_staff``; group membership and own permissions are watched through its ``groups`` and
``user_permissions`` relations (``PermissionsMixin``) when it has them. A model without them (a bare
``AbstractBaseUser``) still gets revocation on password change, deactivation and deletion, and the public role's
group permissions are watched either way.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import FieldDoesNotExist
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


_REVOKING = ("password", "is_active")  # a change ends the user's sessions (is_active: when it turns false)
_RELOADING = ("is_superuser", "is_staff")  # a change makes its sockets re-read their rights


def watched_fields(model: Any) -> tuple[str, ...]:
    """The fields of ``_REVOKING`` and ``_RELOADING`` that ``model`` has (``AbstractBaseUser``: only ``password``
    is sure; its ``is_active`` may be a plain attribute)."""
    names = {field.name for field in model._meta.concrete_fields}
    return tuple(name for name in (*_REVOKING, *_RELOADING) if name in names)


def _remember_credentials(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    instance._likha_change = None
    watched = watched_fields(sender)
    if raw or instance.pk is None or (update_fields is not None and not set(watched) & set(update_fields)):
        return
    if update_fields is not None and set(update_fields) == {"password"} and getattr(instance, "_password", 1) is None:
        return  # Django re-hashing the same password on login (a hasher upgrade) is not a password change
    old = sender._default_manager.filter(pk=instance.pk).values(*watched).first()
    if old is None:
        return
    if old["password"] != instance.password or (old.get("is_active", False) and not instance.is_active):
        instance._likha_change = "revoke"
    elif any(old[name] != getattr(instance, name) for name in _RELOADING if name in old):
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
    groups_through = _through(user_model, GROUPS)
    if isinstance(instance, user_model):  # user.groups / user.user_permissions changed
        revocation.reload_users([instance.pk])
    elif isinstance(instance, Group):  # group.permissions changed, or the group's members changed
        if sender is Group.permissions.through and _is_public(instance):
            revocation.reload_public()
        revocation.reload_users(_members(instance) | (keys if sender is groups_through else set()))
    elif isinstance(instance, Permission):  # a permission's groups or users changed
        if sender is Group.permissions.through:
            groups = Group.objects.filter(pk__in=keys)
            if any(_is_public(group) for group in groups):
                revocation.reload_public()
            revocation.reload_users(_members_of(groups))
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
        return _users_where(USER_PERMISSIONS, instance)
    return set()


GROUPS, USER_PERMISSIONS = "groups", "user_permissions"


def _relation(user_model: Any, name: str) -> Any:
    """The user model's many-to-many field ``name`` to ``Group`` / ``Permission`` (``PermissionsMixin``'s
    ``groups``, ``user_permissions``), or ``None`` when it has no such relation."""
    target = Group if name == GROUPS else Permission
    try:
        field = user_model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if field.many_to_many and field.related_model is target else None


def _through(user_model: Any, name: str) -> Any:
    field = _relation(user_model, name)
    return None if field is None else field.remote_field.through


def _users_where(lookup: str, value: Any) -> set[Any]:
    """Keys of the users matching ``lookup=value`` on their relation (``groups``, ``groups__in``,
    ``user_permissions``); none when the user model has no such relation."""
    user_model = get_user_model()
    if _relation(user_model, lookup.split("__")[0]) is None:
        return set()
    return set(user_model._default_manager.filter(**{lookup: value}).values_list("pk", flat=True))


def _members(group: Group) -> set[Any]:
    return _users_where(GROUPS, group)


def _members_of(groups: Any) -> set[Any]:
    return _users_where(f"{GROUPS}__in", groups)


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
    throughs = [_through(user_model, GROUPS), _through(user_model, USER_PERMISSIONS), Group.permissions.through]
    for through in throughs:
        if through is not None:  # a user model without PermissionsMixin has neither relation
            m2m_changed.connect(_membership_changed, sender=through, dispatch_uid=f"likha_reload_{through.__name__}")
