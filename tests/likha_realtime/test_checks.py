"""System checks of the deployment for likha_realtime (``likha_realtime.checks``): the channel layer and DEBUG; and
the sockets without a channel layer at run time: close 4500, never 1011, one ERROR naming the fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core import checks
from django.test import override_settings

from likha_realtime.checks import (
    CHANNEL_LAYER_HINT,
    check_any_origin,
    check_channel_layer,
    check_database_connections,
    check_debug,
    check_single_process_layer,
    check_upstream_redis_layer,
    persistent_connection_warnings,
)
from likha_realtime.routing import (
    SERVER_MISCONFIGURED,
    SERVER_MISCONFIGURED_REASON,
    channel_layer_required,
    websocket_application,
    websocket_urlpatterns,
)
from tests.likha_realtime.support import realtime

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {
    "default": {"BACKEND": "likha_realtime.layers.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
}
UPSTREAM_REDIS = {
    "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
}
MISSING = "CHANNEL_LAYERS has no 'default' channel layer: the realtime sockets cannot work."


def ids(found: list[checks.CheckMessage]) -> list[str]:
    return [message.id or "" for message in found]


def ours(found: list[checks.CheckMessage]) -> list[str]:
    return [i for i in ids(found) if i.startswith(("likha_realtime.", "realtime_auth."))]


@pytest.fixture
def no_channel_layers() -> Iterator[None]:
    """A host settings module without CHANNEL_LAYERS at all."""
    with override_settings():
        del settings.CHANNEL_LAYERS
        yield


# -- E003: no channel layer --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_channel_layers")
def test_no_channel_layers_setting_is_an_error_naming_the_fix() -> None:
    (error,) = check_channel_layer()
    assert (error.level, error.id, error.msg, error.hint) == (
        checks.ERROR,
        "likha_realtime.E003",
        MISSING,
        CHANNEL_LAYER_HINT,
    )
    assert "likha_realtime.layers.RedisChannelLayer" in CHANNEL_LAYER_HINT and "redis://" in CHANNEL_LAYER_HINT
    assert "likha_realtime.E003" in ids(checks.run_checks())  # registered, without --deploy


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ({}, MISSING),
        ({"other": IN_MEMORY["default"]}, MISSING),
        (
            {"default": {"BACKEND": "nowhere.Layer"}},
            "CHANNEL_LAYERS['default'] cannot be loaded (Cannot import BACKEND 'nowhere.Layer' specified for "
            "default): the realtime sockets cannot work.",
        ),
        (
            {"default": {"CONFIG": {}}},
            "CHANNEL_LAYERS['default'] cannot be loaded (No BACKEND specified for default): the realtime sockets "
            "cannot work.",
        ),
    ],
    ids=["empty", "no default", "unknown backend", "no backend"],
)
def test_an_unusable_channel_layer_is_an_error(layers: dict[str, Any], message: str) -> None:
    with override_settings(CHANNEL_LAYERS=layers):
        assert [(e.id, e.msg) for e in check_channel_layer()] == [("likha_realtime.E003", message)]


@pytest.mark.parametrize("layers", [IN_MEMORY, REDIS], ids=["in-memory", "redis"])
def test_a_configured_channel_layer_passes(layers: dict[str, Any]) -> None:
    with override_settings(CHANNEL_LAYERS=layers):
        assert check_channel_layer() == []


@pytest.mark.usefixtures("no_channel_layers")
@pytest.mark.parametrize(
    "switches",
    [{"ENABLED": False}, {"REST_ENABLED": False, "GRAPHQL_ENABLED": False, "LOGS_ENABLED": False}],
    ids=["all off", "each off"],
)
def test_no_channel_layer_is_fine_without_sockets(switches: dict[str, bool]) -> None:
    with realtime(**switches):
        assert check_channel_layer() == []


# -- W002: the in-memory layer (deploy) --------------------------------------------------------------------------


def test_the_in_memory_layer_is_a_deployment_warning() -> None:
    with override_settings(CHANNEL_LAYERS=IN_MEMORY):
        (warning,) = check_single_process_layer()
        assert (warning.level, warning.id) == (checks.WARNING, "likha_realtime.W002")
        assert warning.msg == (
            "CHANNEL_LAYERS['default'] is the in-memory layer: events, log lines, logouts and rights changes reach "
            "only the sockets of the server process where they happen."
        )
        assert warning.hint is not None and warning.hint.startswith("Fine for one server process. With several")
        assert "likha_realtime.layers.RedisChannelLayer" in warning.hint
        assert "likha_realtime.W002" in ids(checks.run_checks(include_deployment_checks=True))
        assert "likha_realtime.W002" not in ids(checks.run_checks())


def test_a_redis_layer_or_none_gives_no_in_memory_warning() -> None:
    with override_settings(CHANNEL_LAYERS=REDIS):
        assert check_single_process_layer() == []
    with override_settings(CHANNEL_LAYERS={}):
        assert check_single_process_layer() == []  # E003 says it


# -- W006: channels-redis' own layer -----------------------------------------------------------------------------


def test_channels_redis_own_layer_is_a_warning_naming_ours() -> None:
    with override_settings(CHANNEL_LAYERS=UPSTREAM_REDIS):
        (warning,) = check_upstream_redis_layer()
        assert (warning.level, warning.id) == (checks.WARNING, "likha_realtime.W006")
        assert warning.msg.startswith("CHANNEL_LAYERS['default'] is channels-redis' own RedisChannelLayer: ")
        assert warning.hint == (
            "Use 'BACKEND': 'likha_realtime.layers.RedisChannelLayer' (the same CONFIG; docs/CONFIGURATION.md, "
            "'Channel layer')."
        )
        assert "likha_realtime.W006" in ids(checks.run_checks())  # a plain check, not only --deploy
    for layers in (REDIS, IN_MEMORY, {}):
        with override_settings(CHANNEL_LAYERS=layers):
            assert check_upstream_redis_layer() == []
    with override_settings(CHANNEL_LAYERS=UPSTREAM_REDIS), realtime(ENABLED=False):
        assert check_upstream_redis_layer() == []


# -- W003: DEBUG (deploy) ----------------------------------------------------------------------------------------


def test_debug_is_a_deployment_warning() -> None:
    with override_settings(DEBUG=True):
        (warning,) = check_debug()
        assert (warning.level, warning.id) == (checks.WARNING, "likha_realtime.W003")
        assert warning.hint == "Set DEBUG = False in deployment (env DEBUG=false in this project)."
        assert "likha_realtime.W003" in ids(checks.run_checks(include_deployment_checks=True))
        assert "likha_realtime.W003" not in ids(checks.run_checks())
    with override_settings(DEBUG=False):
        assert check_debug() == []


def test_the_test_settings_pass_every_check_but_the_in_memory_layer() -> None:
    """The demo's settings under test (in-memory layer and cache, a random key, DEBUG off): only W002 and
    realtime_auth.W003 (the login throttle's per-process cache), and only with --deploy."""
    assert ours(checks.run_checks()) == []
    deploy = ours(checks.run_checks(include_deployment_checks=True))
    assert sorted(deploy) == ["likha_realtime.W002", "realtime_auth.W003"]


# -- at run time: no channel layer, no 1011 ------------------------------------------------------------------------


async def closed_with(comm: WebsocketCommunicator) -> tuple[int, str | None]:
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"], output.get("reason")


@pytest.mark.parametrize("layers", [{}, {"default": {"BACKEND": "nowhere.Layer"}}], ids=["none", "broken"])
async def test_without_a_channel_layer_every_socket_is_closed_4500_with_one_error_logged(
    caplog: pytest.LogCaptureFixture, layers: dict[str, Any]
) -> None:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    with override_settings(CHANNEL_LAYERS=layers), realtime(REST_AUTH="handshake", LOGS_AUTH="strict"):
        application = websocket_application()
        with caplog.at_level(logging.INFO):
            for path in ("/websockets", "/graphql", "/websockets/logs", "/websockets"):
                comm = WebsocketCommunicator(application, path, headers=headers)
                assert await comm.connect(timeout=5) == (True, None)
                assert await closed_with(comm) == (SERVER_MISCONFIGURED, SERVER_MISCONFIGURED_REASON)
                await comm.wait(timeout=5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.name, r.levelno) for r in errors] == [("likha_realtime.routing", logging.ERROR)]
    assert errors[0].getMessage().startswith("WebSocket refused (close 4500): CHANNEL_LAYERS")
    assert errors[0].getMessage().endswith(CHANNEL_LAYER_HINT)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback, no AttributeError


@pytest.mark.django_db(transaction=True)
async def test_with_a_channel_layer_the_sockets_are_served() -> None:
    with override_settings(CHANNEL_LAYERS=IN_MEMORY), realtime(REST_AUTH="handshake", HEARTBEAT_ENABLED=False):
        comm = WebsocketCommunicator(channel_layer_required(_router()), "/websockets")
        assert await comm.connect(timeout=5) == (True, None)
        await comm.send_json_to({"type": "ping", "uid": "p"})  # the REST socket's handshake answers it
        assert await comm.receive_json_from(timeout=5) == {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
            "uid": "p",
        }
        assert await closed_with(comm) == (4401, "Unauthorized")


async def test_other_scopes_pass_the_channel_layer_guard() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    with override_settings(CHANNEL_LAYERS={}):
        await channel_layer_required(app)({"type": "http"}, None, None)
    assert seen == ["http"]


def _router() -> Any:
    from channels.routing import URLRouter

    return URLRouter(websocket_urlpatterns())


# -- W004: every origin (deploy) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "hosts"),
    [(["*"], ["127.0.0.1"]), (None, ["*"]), (["https://app.example.com", "*"], ["erp.example.com"])],
)
def test_any_origin_is_a_deploy_warning(origins: list[str] | None, hosts: list[str]) -> None:
    with realtime(WEBSOCKETS_ALLOWED_ORIGINS=origins), override_settings(ALLOWED_HOSTS=hosts):
        (warning,) = check_any_origin()
        assert (warning.level, warning.id) == (checks.WARNING, "likha_realtime.W004")
        assert "a page of any web site may open the realtime sockets" in warning.msg
        assert "WEBSOCKETS_ALLOWED_ORIGINS" in warning.hint
        assert "likha_realtime.W004" in ids(checks.run_checks(include_deployment_checks=True))
        assert "likha_realtime.W004" not in ids(checks.run_checks())


@pytest.mark.parametrize(
    ("origins", "hosts"),
    [(None, ["127.0.0.1", "localhost"]), (["https://app.example.com"], ["*"]), (None, [".example.com"])],
)
def test_a_list_of_origins_or_of_hosts_gives_no_warning(origins: list[str] | None, hosts: list[str]) -> None:
    # An explicit list decides alone, even beside ALLOWED_HOSTS = ["*"].
    with realtime(WEBSOCKETS_ALLOWED_ORIGINS=origins), override_settings(ALLOWED_HOSTS=hosts):
        assert check_any_origin() == []


# -- W005: persistent PostgreSQL connections without a pool (deploy) ---------------------------------------------

POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "erp"}


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        ({**POSTGRES, "CONN_MAX_AGE": 60}, "for 60 s (CONN_MAX_AGE=60)"),
        ({**POSTGRES, "CONN_MAX_AGE": None}, "for ever (CONN_MAX_AGE=None)"),
        ({**POSTGRES, "CONN_MAX_AGE": 600, "OPTIONS": {"pool": False}}, "for 600 s (CONN_MAX_AGE=600)"),
        (
            {"ENGINE": "django.contrib.gis.db.backends.postgis", "CONN_MAX_AGE": 30, "OPTIONS": {}},
            "for 30 s (CONN_MAX_AGE=30)",
        ),
    ],
)
def test_persistent_postgresql_connections_without_a_pool_are_a_deploy_warning(
    config: dict[str, Any], kept: str
) -> None:
    (warning,) = persistent_connection_warnings({"default": config})
    assert (warning.level, warning.id) == (checks.WARNING, "likha_realtime.W005")
    assert warning.msg == (
        f"DATABASES['default'] keeps PostgreSQL connections open {kept} without a pool: under ASGI each request and "
        "each socket's database call runs in a thread of its own, and each thread keeps its own connection, so a "
        "server process's connections grow with the load until PostgreSQL refuses new ones ('too many clients "
        "already') and writes fail."
    )
    assert warning.hint == (
        "Set CONN_MAX_AGE = 0 and use Django's psycopg pool, sized so that server processes x max_size stays under "
        "PostgreSQL's max_connections: 'OPTIONS': {'pool': {'min_size': 2, 'max_size': 20}} in DATABASES['default'] "
        "(needs psycopg 3 and psycopg-pool), or put PgBouncer in front with CONN_MAX_AGE = 0 "
        "(docs/DEPLOYMENT.md, 'PostgreSQL')."
    )


@pytest.mark.parametrize(
    "config",
    [
        {**POSTGRES, "CONN_MAX_AGE": 0},
        POSTGRES,  # Django's default CONN_MAX_AGE is 0
        {**POSTGRES, "CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 20}}},
        {**POSTGRES, "CONN_MAX_AGE": 0, "OPTIONS": {"pool": True}},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3", "CONN_MAX_AGE": 60},
        {"ENGINE": "django.db.backends.mysql", "NAME": "erp", "CONN_MAX_AGE": None},
    ],
)
def test_no_persistence_a_pool_or_another_database_gives_no_warning(config: dict[str, Any]) -> None:
    assert persistent_connection_warnings({"default": config}) == []


def test_each_alias_is_checked() -> None:
    databases = {
        "default": {**POSTGRES, "CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 10}}},
        "reports": {**POSTGRES, "NAME": "reports", "CONN_MAX_AGE": 60},
    }
    (warning,) = persistent_connection_warnings(databases)
    assert warning.msg.startswith("DATABASES['reports'] keeps PostgreSQL connections open for 60 s")
    assert "in DATABASES['reports']" in (warning.hint or "")


def test_the_database_check_is_registered_as_a_deploy_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # The setting only, not the connections made from it (override_settings warns that DATABASES is not for it).
    monkeypatch.setattr(settings, "DATABASES", {"default": {**POSTGRES, "CONN_MAX_AGE": 60}})
    assert ids(check_database_connections()) == ["likha_realtime.W005"]
    assert "likha_realtime.W005" in ids(checks.run_checks(include_deployment_checks=True))
    assert "likha_realtime.W005" not in ids(checks.run_checks())
