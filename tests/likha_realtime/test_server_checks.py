"""System checks at server start (``likha_realtime.server.run_system_checks``): errors stop the server with one line,
warnings are printed once; and a host serving with plain daphne (no checks) gets close 4500, never 1011."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.sync.client import connect

from likha_realtime.server import DJANGO_KEY_CHECKS, run_system_checks
from tests.likha_realtime.test_server import (
    CLIENT_TIMEOUT,
    HOST,
    ROOT,
    SERVER,
    RunningServer,
    free_port,
    run_server_expecting_exit,
    server_env,
    stop,
    wait_until_listening,
)
from tests.support import wait_until

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def printed(**settings: object) -> list[str]:
    """The warning lines ``run_system_checks`` prints under ``settings`` (it must not raise)."""
    out = io.StringIO()
    with override_settings(**settings):
        run_system_checks(warnings_to=out)
    return out.getvalue().splitlines()


def ours(lines: list[str]) -> list[str]:
    """The ids of our checks in ``lines``, in order."""
    return [found for line in lines for found in re.findall(r"\(((?:likha_realtime|realtime_auth)\.[EW][0-9]+):", line)]


# -- in this process -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_error_stops_the_server_with_the_fix_in_one_message() -> None:
    with override_settings(CHANNEL_LAYERS={}), pytest.raises(ImproperlyConfigured) as stopped:
        run_system_checks(warnings_to=io.StringIO())
    assert str(stopped.value).startswith(
        "CHANNEL_LAYERS has no 'default' channel layer: the realtime sockets cannot work. (likha_realtime.E003: "
        "Configure a channel layer, e.g. CHANNEL_LAYERS = {'default': {'BACKEND': "
        "'likha_realtime.layers.RedisChannelLayer'"
    )


@pytest.mark.django_db
def test_a_weak_signing_key_stops_the_server() -> None:
    from django.conf import settings

    weak = override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, "SIGNING_KEY": "hunter2hunter2"})
    with weak, pytest.raises(ImproperlyConfigured) as stopped:
        run_system_checks(warnings_to=io.StringIO())
    assert "(realtime_auth.E003: Set SIMPLE_JWT['SIGNING_KEY']" in str(stopped.value)
    assert "hunter2" not in str(stopped.value)


@pytest.mark.django_db
def test_warnings_are_printed_once_each_with_their_fix() -> None:
    lines = printed(CHANNEL_LAYERS=IN_MEMORY, DEBUG=True)
    assert ours(lines) == ["likha_realtime.W002", "likha_realtime.W003", "realtime_auth.W001", "realtime_auth.W003"]
    assert all(line.startswith("configuration warning: ") for line in lines)
    (in_memory,) = [line for line in lines if "likha_realtime.W002" in line]
    assert in_memory.startswith("configuration warning: CHANNEL_LAYERS['default'] is the in-memory layer: ")
    assert "(likha_realtime.W002: Fine for one server process. With several processes" in in_memory
    # Of Django's own --deploy checks (SSL redirect, HSTS, secure cookies: the proxy's business) only the SECRET_KEY
    # ones run, and the test settings' key passes them.
    assert not [line for line in lines if "security.W0" in line]


# Django's security.W009 as it prints it (SECRET_KEY_FALLBACKS: security.W025, the same text for that setting).
WEAK_SECRET_KEY = (
    "configuration warning: Your {} has less than 50 characters, less than 5 unique characters, or it's prefixed "
    "with 'django-insecure-' indicating that it was generated automatically by Django. Please generate a long and "
    "random value, otherwise many of Django's security-critical features will be vulnerable to attack. ({})"
)
DEVELOPMENT_KEY = "django-insecure-" + "k3y-0f-a-fr35h-5tartpr0ject-w1th-50-rand0m-charact3r5"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "secret_key", [DEVELOPMENT_KEY, "hunter2hunter2", "a" * 64], ids=["development key", "short", "one character"]
)
def test_a_weak_secret_key_is_flagged_when_the_jwts_have_a_strong_key_of_their_own(secret_key: str) -> None:
    from django.conf import settings

    from realtime_auth.checks import check_signing_key

    strong = override_settings(SIMPLE_JWT={**settings.SIMPLE_JWT, "SIGNING_KEY": "S" + "x9Lq2" * 10})
    with strong, override_settings(SECRET_KEY=secret_key):
        assert check_signing_key() == []  # the JWTs' own key is strong: realtime_auth.E003/W002 say nothing
        lines = printed(CHANNEL_LAYERS=IN_MEMORY)
    assert [line for line in lines if "security." in line] == [WEAK_SECRET_KEY.format("SECRET_KEY", "security.W009")]


@pytest.mark.django_db
def test_a_weak_secret_key_fallback_is_flagged() -> None:
    lines = printed(CHANNEL_LAYERS=IN_MEMORY, SECRET_KEY_FALLBACKS=["x9Lq2" * 12, DEVELOPMENT_KEY])
    flagged = [line for line in lines if "security." in line]
    assert flagged == [WEAK_SECRET_KEY.format("SECRET_KEY_FALLBACKS[1]", "security.W025")]


def test_the_configuration_document_lists_the_django_checks_the_server_runs() -> None:
    text = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    for check in sorted(DJANGO_KEY_CHECKS):
        assert text.count(f"| `{check}` (Django's) | warning | deploy |") == 1, check


@pytest.mark.django_db
def test_a_silenced_secret_key_check_is_not_printed() -> None:
    lines = printed(CHANNEL_LAYERS=IN_MEMORY, SECRET_KEY=DEVELOPMENT_KEY, SILENCED_SYSTEM_CHECKS=["security.W009"])
    assert [line for line in lines if "security." in line] == []


@pytest.mark.django_db
def test_silenced_checks_are_not_printed() -> None:
    from django.contrib.auth.models import Group

    Group.objects.create(name="Public")
    silenced = ["likha_realtime.W002", "likha_realtime.W003", "realtime_auth.W003"]
    assert ours(printed(CHANNEL_LAYERS=IN_MEMORY, DEBUG=True, SILENCED_SYSTEM_CHECKS=silenced)) == []


# -- real processes ------------------------------------------------------------------------------------------------


def host_project(tmp_path: Path, body: str) -> dict[str, str]:
    """A host settings module (the demo's settings changed by ``body``) and the environment that selects it."""
    (tmp_path / "host_settings.py").write_text(
        "from settings.base import *  # noqa: F403\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', 'NAME': {str(tmp_path / 'db')!r}}}}}\n"
        + textwrap.dedent(body)
    )
    return {"DJANGO_SETTINGS_MODULE": "host_settings", "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}


def test_the_server_refuses_to_start_without_a_channel_layer(tmp_path: Path) -> None:
    env = host_project(tmp_path, "del CHANNEL_LAYERS\n")
    result = run_server_expecting_exit("settings.asgi:application", **env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("configuration error: ")]
    assert line.startswith("configuration error: CHANNEL_LAYERS has no 'default' channel layer: the realtime sockets")
    assert "(likha_realtime.E003: Configure a channel layer" in line


@pytest.fixture
def started(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    command, body = request.param
    env = host_project(tmp_path, body)
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "-b", HOST, "-p", str(port), "settings.asgi:application"],
            cwd=ROOT,
            env=server_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningServer(process, port, log)
    try:
        wait_until_listening(running)
        yield running
    finally:
        stop(process)


# The demo's settings keep the JWT signing key they computed (JWT_SIGNING_KEY or the original SECRET_KEY): the
# development SECRET_KEY set after them is Django's alone.
WARNED = (
    SERVER,
    "CHANNEL_LAYERS = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}}\nDEBUG = True\n"
    f"SECRET_KEY = {DEVELOPMENT_KEY!r}\n",
)
PLAIN_DAPHNE = ([sys.executable, "-m", "daphne"], "del CHANNEL_LAYERS\n")


@pytest.mark.parametrize("started", [WARNED], indirect=True, ids=["in-memory layer, DEBUG, SECRET_KEY"])
def test_the_server_prints_each_warning_once_and_serves(started: RunningServer) -> None:
    text = started.log.read_text()
    for check in ("likha_realtime.W002", "likha_realtime.W003"):
        assert text.count(f"({check}: ") == 1, text
    assert text.count(WEAK_SECRET_KEY.format("SECRET_KEY", "security.W009") + "\n") == 1, text
    assert "realtime_auth.W002" not in text and "realtime_auth.E003" not in text  # the JWTs' key is another
    assert "configuration error" not in text


@pytest.mark.parametrize("started", [PLAIN_DAPHNE], indirect=True, ids=["plain daphne, no CHANNEL_LAYERS"])
def test_plain_daphne_without_a_channel_layer_closes_4500_not_1011(started: RunningServer) -> None:
    for _ in range(2):
        with (
            connect(started.url("/websockets"), proxy=None, open_timeout=CLIENT_TIMEOUT) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=CLIENT_TIMEOUT)
        assert closed.value.rcvd == Close(4500, "")  # plain daphne drops close reasons (our server sends them)

    def logged() -> bool:
        return "WebSocket refused (close 4500)" in started.log.read_text()

    wait_until(logged, 10)
    text = started.log.read_text()
    assert text.count("WebSocket refused (close 4500): CHANNEL_LAYERS has no 'default' channel layer") == 1, text
    assert "AttributeError" not in text and "Traceback" not in text
