"""A host user model without ``PermissionsMixin`` (an ``AbstractBaseUser`` alone: no ``is_superuser``, no
``has_perm()``) holds no permission and is no admin — never an ``AttributeError`` (docs/CONFIGURATION.md)."""

from __future__ import annotations

import pytest

from likha_realtime.access.collections import registry
from likha_realtime.access.principal import Principal
from likha_realtime.sockets.logs import is_admin


class BareUser:
    """What ``AbstractBaseUser`` gives a logged-in user: no ``is_superuser``, ``has_perm`` or ``groups``."""

    pk = 7
    is_active = True
    is_authenticated = True


class OwnPermsUser(BareUser):
    """The same model with a ``has_perm()`` of its own (CONFIGURATION.md: how such a model grants rights)."""

    def has_perm(self, perm: str) -> bool:
        return perm in {"erp_demo.view_product", "likha_realtime.view_logs"}


@pytest.mark.django_db
def test_a_bare_user_holds_no_permission_and_is_no_admin() -> None:
    principal = Principal(BareUser())
    assert (principal.is_public, principal.is_superuser) == (False, False)
    assert [principal.has_perm(registry.get(name), "view") for name in ("products", "customers")] == [False, False]
    assert is_admin(BareUser()) is False


@pytest.mark.django_db
def test_a_has_perm_of_its_own_decides() -> None:
    principal = Principal(OwnPermsUser())
    assert [principal.has_perm(registry.get(name), "view") for name in ("products", "customers")] == [True, False]
    assert is_admin(OwnPermsUser()) is True
