"""Fixtures of the realtime tests: the seeded demo (users, groups, rows), a clean in-memory channel layer, an editor's
socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from erp_demo.management.commands import seed_demo
from erp_demo.models import SeededUser, User
from realtime_auth import tokens
from tests.likha_realtime.support import Roles, open_socket


def _tokens() -> Roles:
    admin = User.objects.get(email=seed_demo.ADMIN_EMAIL)
    editor = User.objects.get(email=seed_demo.EDITOR_EMAIL)
    return Roles(admin=tokens.issue_pair(admin).access, editor=tokens.issue_pair(editor).access)


@pytest.fixture
def demo() -> Roles:
    """``manage.py seed_demo``: 30 products, 12 customers, 24 orders, the admin and editor, Editors and Public."""
    call_command("seed_demo", stdout=StringIO())
    return _tokens()


@pytest.fixture
def roles() -> Roles:
    """The demo's logins and groups as ``seed_demo`` makes them, without its rows (tests build the rows they assert)."""

    def group(name: str, codenames: tuple[str, ...]) -> Group:
        created = Group.objects.create(name=name)
        created.permissions.set(Permission.objects.filter(content_type__app_label="erp_demo", codename__in=codenames))
        assert created.permissions.count() == len(codenames)
        return created

    editors = group(seed_demo.EDITORS_GROUP, seed_demo.EDITORS_PERMISSIONS)
    group(seed_demo.PUBLIC_GROUP, seed_demo.PUBLIC_PERMISSIONS)
    admin = User.objects.create_superuser(seed_demo.ADMIN_EMAIL, seed_demo.ADMIN_PASSWORD, is_staff=True)
    editor = User.objects.create_user(seed_demo.EDITOR_EMAIL, seed_demo.EDITOR_PASSWORD, is_staff=True)
    editor.groups.add(editors)
    # Recorded as seed_demo records the users it creates: a later seed_demo (``seeded``) takes them for its own.
    SeededUser.objects.bulk_create([SeededUser(user=admin), SeededUser(user=editor)])
    return _tokens()


@pytest.fixture
def clean_layer() -> None:
    """Events of earlier tests (other event loops) must not linger in the process-wide in-memory layer."""
    async_to_sync(get_channel_layer().flush)()


@pytest.fixture
def seeded() -> dict[str, int]:
    """``seed_demo``'s rows, by the keys of a few of them (ids differ between runs of transactional tests)."""
    from erp_demo.models import Customer, Product

    call_command("seed_demo", verbosity=0)
    return {
        "bolt": Product.objects.get(sku="SKU-0001").pk,
        "shelf": Product.objects.get(sku="SKU-0002").pk,
        "third": Product.objects.get(sku="SKU-0003").pk,
        "customer": Customer.objects.order_by("pk").first().pk,
    }


@pytest.fixture
async def comm(roles: Roles) -> AsyncIterator[WebsocketCommunicator]:
    """The editor's REST socket (public mode, no heartbeat), closed after the test."""
    socket = await open_socket(roles.path("editor"))
    yield socket
    await socket.disconnect()
