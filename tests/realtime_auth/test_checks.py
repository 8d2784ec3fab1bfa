"""System checks of the deployment for realtime_auth (``realtime_auth.checks``): the public role's group (database)
and the JWT signing key (deploy)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core import checks
from django.test import override_settings

from realtime_auth.checks import KEY_HINT, check_public_group, check_signing_key

STRONG = "k" + "".join(chr(ord("a") + i % 26) for i in range(63))  # 64 bytes, 26 distinct characters


def ids(found: list[checks.CheckMessage]) -> list[str]:
    return [message.id or "" for message in found]


def jwt(**values: Any) -> override_settings:
    return override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, **values})


# -- W001: the public role's group (database) ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_missing_public_group_is_a_database_warning_naming_the_fix() -> None:
    (warning,) = check_public_group(databases=["default"])
    assert (warning.level, warning.id) == (checks.WARNING, "realtime_auth.W001")
    assert warning.msg == (
        "The public role's group 'Public' (LIKHA_REALTIME['PUBLIC_ROLE']) does not exist: sockets in the public role "
        "and requests without a token can read nothing."
    )
    assert warning.hint == (
        "Create the group 'Public' (Django admin, Groups) with the view permissions the public may have, or set "
        "LIKHA_REALTIME['PUBLIC_ROLE'] to an existing group. If the public should read nothing, add "
        "'realtime_auth.W001' to SILENCED_SYSTEM_CHECKS."
    )
    assert "realtime_auth.W001" in ids(checks.run_checks(databases=["default"]))
    assert "realtime_auth.W001" not in ids(checks.run_checks())  # only with check --database


@pytest.mark.django_db
def test_the_public_group_named_by_the_setting_passes() -> None:
    Group.objects.create(name="Public")
    assert check_public_group(databases=["default"]) == []
    with override_settings(LIKHA_REALTIME={**settings.LIKHA_REALTIME, "PUBLIC_ROLE": "Guests"}):
        assert [w.msg.split(":")[0] for w in check_public_group(databases=["default"])] == [
            "The public role's group 'Guests' (LIKHA_REALTIME['PUBLIC_ROLE']) does not exist"
        ]
        Group.objects.create(name="Guests")
        assert check_public_group(databases=["default"]) == []


@pytest.mark.django_db
def test_a_database_without_tables_is_left_to_migrate(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError
    from django.db.models import QuerySet

    def no_table(self: QuerySet[Any]) -> bool:
        raise OperationalError("no such table: auth_group")

    monkeypatch.setattr(QuerySet, "exists", no_table)
    assert check_public_group(databases=["default"]) == []


# -- E003 / W002: the JWT signing key (deploy) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"SIGNING_KEY": "short-key"},
            "The JWT signing key (SIMPLE_JWT['SIGNING_KEY']) is weak: 9 bytes with 9 distinct characters; HS256 needs "
            "at least 32 random bytes.",
        ),
        (
            {"SIGNING_KEY": "a" * 80},
            "The JWT signing key (SIMPLE_JWT['SIGNING_KEY']) is weak: 80 bytes with 1 distinct characters; HS256 needs "
            "at least 32 random bytes.",
        ),
        (
            {"SIGNING_KEY": STRONG[:50], "ALGORITHM": "HS512"},
            "The JWT signing key (SIMPLE_JWT['SIGNING_KEY']) is weak: 50 bytes with 26 distinct characters; HS512 "
            "needs at least 64 random bytes.",
        ),
        (
            {"SIGNING_KEY": ""},
            "The JWT signing key (SIMPLE_JWT['SIGNING_KEY']) is weak: 0 bytes with 0 distinct characters; HS256 needs "
            "at least 32 random bytes.",
        ),
    ],
    ids=["short", "one character", "short for HS512", "empty"],
)
def test_a_weak_signing_key_is_a_deployment_error(values: dict[str, Any], message: str) -> None:
    with jwt(**values):
        (error,) = check_signing_key()
        assert (error.level, error.id, error.hint) == (checks.ERROR, "realtime_auth.E003", KEY_HINT)
        assert error.msg == f"{message} Whoever guesses it can sign access tokens for any user, superusers included."
        if values["SIGNING_KEY"]:
            assert values["SIGNING_KEY"] not in error.msg + str(error.hint)  # the key is never shown
        assert "realtime_auth.E003" in ids(checks.run_checks(include_deployment_checks=True))
        assert "realtime_auth.E003" not in ids(checks.run_checks())


def test_a_weak_secret_key_used_as_signing_key_is_named_as_such() -> None:
    with override_settings(SECRET_KEY="dev"), jwt(SIGNING_KEY="dev"):
        (error,) = check_signing_key()
        assert error.msg.startswith("The JWT signing key (SECRET_KEY) is weak: 3 bytes")


def test_djangos_development_key_is_a_deployment_warning() -> None:
    key = "django-insecure-" + STRONG
    with override_settings(SECRET_KEY=key), jwt(SIGNING_KEY=key):
        (warning,) = check_signing_key()
        assert (warning.level, warning.id, warning.hint) == (checks.WARNING, "realtime_auth.W002", KEY_HINT)
        assert warning.msg.startswith("The JWT signing key (SECRET_KEY) is a development key ('django-insecure-…'")
        assert STRONG not in warning.msg


@pytest.mark.parametrize(
    "values",
    [{"SIGNING_KEY": STRONG}, {"SIGNING_KEY": "x", "ALGORITHM": "RS256", "VERIFYING_KEY": "y"}],
    ids=["strong", "asymmetric"],
)
def test_a_strong_or_asymmetric_key_passes(values: dict[str, Any]) -> None:
    with jwt(**values):
        assert check_signing_key() == []


def test_the_demos_signing_key_passes() -> None:
    assert check_signing_key() == []
