"""``Principal``: the rights a connection or request acts with — a superuser, a user, or the public role."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, Group
from django.db.models import Q

from likha_realtime.access.collections import Collection
from realtime_auth.conf import auth_settings

ACTIONS = ("view", "add", "change", "delete")


class Principal:
    """Built in a sync (database) context; then answers without queries, except the rules it calls."""

    def __init__(self, user: Any = None) -> None:
        self.user = user if user is not None and user.is_authenticated else AnonymousUser()
        self.is_public = not self.user.is_authenticated
        self.is_superuser = bool(getattr(self.user, "is_superuser", False)) and self.user.is_active
        self._public_perms = _public_permissions() if self.is_public else frozenset()
        self._row_q: dict[str, Q | None] = {}
        self._readable: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        who = "public" if self.is_public else f"user {self.user.pk}"
        return f"<Principal {who}>"

    def has_perm(self, collection: Collection, action: str) -> bool:
        if self.is_superuser:
            return True
        perm = collection.perm(action)
        if self.is_public:
            return perm in self._public_perms
        # A user model without PermissionsMixin and a has_perm() of its own holds no permission.
        has_perm = getattr(self.user, "has_perm", None)
        return bool(has_perm is not None and has_perm(perm))

    def row_q(self, collection: Collection) -> Q | None:
        """The rows this principal may see in ``collection`` (``None``: all of them)."""
        if self.is_superuser or collection.row_rule is None:
            return None
        if collection.name not in self._row_q:
            self._row_q[collection.name] = collection.row_rule(self.user)
        return self._row_q[collection.name]

    def readable(self, collection: Collection) -> frozenset[str]:
        """Field names this principal may read (the primary key is always readable)."""
        if collection.name not in self._readable:
            names = set(collection.fields)
            if not self.is_superuser and collection.field_rule is not None:
                allowed = collection.field_rule(self.user)
                if allowed is not None:
                    names &= set(allowed)
            names.add(collection.pk_name)
            self._readable[collection.name] = frozenset(names)
        return self._readable[collection.name]


def _public_permissions() -> frozenset[str]:
    group = Group.objects.filter(name=auth_settings.PUBLIC_ROLE).first()
    if group is None:
        return frozenset()
    return frozenset(
        f"{app}.{codename}" for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    )
