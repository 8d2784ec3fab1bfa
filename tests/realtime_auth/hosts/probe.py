"""Run inside a host's process: ``python -m tests.realtime_auth.hosts.probe`` with ``DJANGO_SETTINGS_MODULE`` (one of
the ``settings_*`` modules here) and ``HOST_DB`` (a new SQLite file).

It does what an ERP team would do after installing the apps (system checks, migrate, create users), then logs in
over HTTP (``POST /auth/login``, Django's test client) and on the REST socket (channels' communicator, in-memory
layer), and prints one JSON object of what it saw; ``test_hosts.py`` asserts it. Tokens are printed as
``<access:USERNAME>`` / ``<refresh:USERNAME>`` after being verified and traced to the user they name, so the
assertions can be exact.
"""

from __future__ import annotations

import asyncio
import json
import sys
from io import StringIO
from typing import Any

import django

django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core import checks  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken  # noqa: E402

from likha_realtime.sockets.rest import RestConsumer  # noqa: E402
from realtime_auth import throttle, usernames  # noqa: E402
from tests.realtime_auth.hosts.backends import CALLS, MASTER_KEY  # noqa: E402

User = get_user_model()
NAME = User.USERNAME_FIELD
# A model whose username is its email (USERNAME_FIELD = "email"): one login key, its users named by their emails.
EMAIL_LOGIN = User.get_email_field_name() == NAME
ANN = "ann@example.com" if EMAIL_LOGIN else "ann"
PASSWORD = "ann-password"


def create(name: str, email: str, password: str = PASSWORD) -> Any:
    names = {NAME: name} if EMAIL_LOGIN else {NAME: name, User.get_email_field_name(): email}
    return User._default_manager.create_user(**names, password=password)


def owner(token: Any, kind: type[AccessToken] | type[RefreshToken]) -> str:
    user_id = kind(token)["user_id"]
    return str(User._default_manager.get(pk=user_id).get_username())


def named(value: Any) -> Any:
    """``value`` with every token replaced by ``<access:USERNAME>`` or ``<refresh:USERNAME>``."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "access_token":
                out[key] = f"<access:{owner(item, AccessToken)}>"
            elif key == "refresh_token":
                out[key] = f"<refresh:{owner(item, RefreshToken)}>"
            else:
                out[key] = named(item)
        return out
    return value


def post(body: Any) -> list[Any]:
    response = Client().post("/auth/login", body, content_type="application/json")
    return [response.status_code, named(response.json())]


def missing_migrations() -> str:
    out = StringIO()
    try:
        call_command("makemigrations", "realtime_auth", "likha_realtime", check=True, dry_run=True, stdout=out)
    except SystemExit:
        return out.getvalue()
    return ""


def backend_calls() -> list[Any]:
    """The calls of the host's own backend since the last look (none where it is not installed)."""
    calls = [list(call) for call in CALLS]
    CALLS.clear()
    return calls


def http(report: dict[str, Any]) -> str:
    """The HTTP logins; returns ann's access token (for the socket)."""
    if EMAIL_LOGIN:
        return http_by_email(report)
    email = "Ann@Example.COM"  # stored as given (auth.User keeps the case of the local part): matched ignoring case
    cases = {
        "email": {"email": "ann@example.com", "password": PASSWORD},
        "username": {NAME: "ann", "password": PASSWORD},
        "email_wrong_password": {"email": "ann@example.com", "password": "wrong"},
        "username_wrong_password": {NAME: "ann", "password": "wrong"},
        "unknown_email": {"email": "nobody@example.com", "password": PASSWORD},
        "both": {"email": "ann@example.com", NAME: "ann", "password": PASSWORD},
        "neither": {"password": PASSWORD},
        "username_too_long": {NAME: "a" * 4097, "password": PASSWORD},
        "username_with_nul": {NAME: "ann\x00", "password": PASSWORD},
        "username_not_a_string": {NAME: ["ann"], "password": PASSWORD},
        # An email that no user has, but that is someone's username: given to the backends as the username.
        "email_that_is_a_username": {"email": "dave@example.com", "password": PASSWORD},
        "shared_email": {"email": "bob@example.com", "password": PASSWORD},
        "shared_email_username": {NAME: "bob", "password": PASSWORD},
        "master_key_email": {"email": "ann@example.com", "password": MASTER_KEY},
        "master_key_username": {NAME: "ann", "password": MASTER_KEY},
    }
    create("ann", email)
    create("dave@example.com", "dave@elsewhere.example")
    create("bob", "bob@example.com")
    create("bobby", "BOB@example.com")  # a second user with bob's email
    report["http"] = {case: post(body) for case, body in cases.items()}
    report["http_backend_calls"] = backend_calls()
    inactive = create("ivy", "ivy@example.com")
    inactive.is_active = False
    inactive.save()
    report["http"]["inactive"] = post({NAME: "ivy", "password": PASSWORD})
    # A host backend that returns an inactive user does not log it in either.
    report["http"]["inactive_master_key"] = post({NAME: "ivy", "password": MASTER_KEY})
    response = Client().post("/auth/login", {NAME: "ann", "password": PASSWORD}, content_type="application/json")
    backend_calls()
    return str(response.json()["data"]["access_token"])


def http_by_email(report: dict[str, Any]) -> str:
    """The HTTP logins of a model whose username is its email; returns ann's access token (for the socket)."""
    cases = {
        "email": {"email": ANN, "password": PASSWORD},
        # Django's backend looks the username up as stored; a host that ignores its case says so in its manager's
        # get_by_natural_key (as the demo's does): realtime_auth hands authenticate() the email as given.
        "email_other_case": {"email": "ANN@example.com", "password": PASSWORD},
        "email_wrong_password": {"email": ANN, "password": "wrong"},
        "unknown_email": {"email": "nobody@example.com", "password": PASSWORD},
        "username": {"username": ANN, "password": PASSWORD},  # no login key of this model: ignored
        "neither": {"password": PASSWORD},
        "email_too_long": {"email": "a" * 243 + "@example.com", "password": PASSWORD},
        "email_with_nul": {"email": "ann\x00@example.com", "password": PASSWORD},
        "email_not_a_string": {"email": [ANN], "password": PASSWORD},
        "inactive": {"email": "ivy@example.com", "password": PASSWORD},
    }
    create(ANN, ANN)
    inactive = create("ivy@example.com", "ivy@example.com")
    inactive.is_active = False
    inactive.save()
    report["http"] = {case: post(body) for case, body in cases.items()}
    report["http_backend_calls"] = backend_calls()
    response = Client().post("/auth/login", {"email": ANN, "password": PASSWORD}, content_type="application/json")
    return str(response.json()["data"]["access_token"])


def socket_cases(access: str) -> dict[str, dict[str, Any]]:
    if EMAIL_LOGIN:
        return {
            "access_token": {"type": "auth", "access_token": access},
            "email": {"type": "auth", "email": ANN, "password": PASSWORD, "uid": "e"},
            "wrong_password": {"type": "auth", "email": ANN, "password": "wrong", "uid": 2},
            "username": {"type": "auth", "username": ANN, "password": PASSWORD, "uid": 3},
        }
    return {
        "access_token": {"type": "auth", "access_token": access},
        "username": {"type": "auth", NAME: "ann", "password": PASSWORD, "uid": 1},
        "email": {"type": "auth", "email": "ANN@example.com", "password": PASSWORD, "uid": "e"},
        "wrong_password": {"type": "auth", NAME: "ann", "password": "wrong", "uid": 2},
        "both": {"type": "auth", "email": "ann@example.com", NAME: "ann", "password": PASSWORD, "uid": 3},
    }


async def socket(report: dict[str, Any], access: str) -> None:
    frames: dict[str, Any] = {}
    for case, message in socket_cases(access).items():
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_json_to(message)
        frame = await comm.receive_json_from(timeout=10)
        frames[case] = await database_sync_to_async(named)(frame)
        await comm.disconnect()
    report["socket"] = frames
    report["socket_backend_calls"] = backend_calls()

    # The host's user model's signals: a changed password ends the user's authenticated sockets.
    comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
    await comm.connect()
    await comm.send_json_to({"type": "auth", NAME: ANN, "password": PASSWORD})
    await comm.receive_json_from(timeout=10)

    def change_password() -> None:
        ann = User._default_manager.get(**{NAME: ANN})
        ann.set_password("a-new-password")
        ann.save()

    await database_sync_to_async(change_password)()
    report["socket_after_password_change"] = await comm.receive_json_from(timeout=10)
    await comm.disconnect()


def main() -> None:
    report: dict[str, Any] = {"model": User._meta.label, "login_fields": list(usernames.login_fields())}
    report["check_errors"] = [f"{m.id}: {m.msg}" for m in checks.run_checks() if m.level >= checks.ERROR]
    call_command("migrate", verbosity=0)
    report["missing_migrations"] = missing_migrations()
    access = http(report)
    asyncio.run(socket(report, access))
    report["throttle_accounts"] = throttle_accounts()
    json.dump(report, sys.stdout)


def throttle_accounts() -> list[list[str]]:
    """Which spellings the login throttle counts as one account (groups of equal ``account_key``): a user's email
    in any case is that user's username; an unknown email is an account of its own."""
    ann = [("email", "ann@example.com")] if EMAIL_LOGIN else [(NAME, "ann"), (NAME, " Ann")]
    spellings = [("email", "ANN@example.com "), *ann, ("email", "nobody@example.com")]
    groups: dict[str, list[str]] = {}
    for field, value in spellings:
        groups.setdefault(throttle.account_key(field, value), []).append(f"{field}={value.strip()}")
    return list(groups.values())


if __name__ == "__main__":
    main()
