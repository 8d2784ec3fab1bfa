"""likha_realtime.conf: literal DEFAULTS, KINDS and ENVIRONMENT, ``from_environ``, the settings check, reloads."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from likha_realtime.apps import check_realtime_settings
from likha_realtime.conf import (
    AUTH_MODE,
    AUTH_TIMEOUT,
    CONN_LIMIT,
    DEFAULTS,
    ENVIRONMENT,
    INTROSPECTION_MODES,
    KINDS,
    LOG_LEVELS,
    LOG_STYLES,
    SOCKET_KEYS,
    SOCKET_NAMES,
    Networks,
    Origins,
    Secrets,
    from_environ,
    realtime_settings,
    socket_auth,
    socket_conn_limit,
    socket_enabled,
    socket_path,
)
from realtime_auth import conf as auth_conf
from realtime_auth.conf import Choice, Count, EnvError, Flag, Kind, Seconds, UrlPath
from tests.live.harness import ROOT

# One valid environment text per kind, and the value it gives (never the default, so a test sees it land).
SAMPLES: dict[Kind, tuple[str, Any]] = {
    Flag(): ("Off", False),
    AUTH_MODE: ("STRICT", "strict"),
    AUTH_TIMEOUT: ("500ms", 0.5),
    CONN_LIMIT: ("25", 25),
    UrlPath(): ("/ws/x", "/ws/x"),
    Seconds(minimum=1): ("2m", 120),
    Count(minimum=1024): ("2048", 2048),
    Count(minimum=64 * 1024): ("131072", 131072),
    Choice(LOG_LEVELS): ("WARN", "warn"),
    Choice(LOG_STYLES): ("raw", "raw"),
    Choice(INTROSPECTION_MODES): ("ALL", "all"),
    Count(minimum=1): ("5", 5),
    Count(minimum=0): ("7", 7),
    Seconds(minimum=0.001): ("250ms", 0.25),
    Count(minimum=100): ("5000", 5000),
    Seconds(minimum=0.01): ("250ms", 0.25),
    Seconds(minimum=0): ("1m", 60),
    Origins(): ("https://App.example.com,http://localhost:5173", ["https://app.example.com", "http://localhost:5173"]),
    Secrets(): ("a-scraper-token-0001, another-token-00002", ["a-scraper-token-0001", "another-token-00002"]),
    Networks(): ("10.0.0.0/8, ::1", ["10.0.0.0/8", "::1"]),
}


def error(message: str) -> checks.Error:
    return checks.Error(message, hint="Fix the value in settings.LIKHA_REALTIME.", id="likha_realtime.E001")


def typo(key: str, hint: str) -> checks.Warning:
    return checks.Warning(
        f"LIKHA_REALTIME[{key!r}] is not a setting of likha_realtime or realtime_auth.",
        hint=hint,
        id="likha_realtime.W001",
    )


def test_defaults_and_kinds_have_the_same_literal_keys() -> None:
    assert list(KINDS) == list(DEFAULTS)
    assert len(DEFAULTS) == 49
    assert not set(DEFAULTS) & set(auth_conf.DEFAULTS)


def test_every_default_is_a_value_its_kind_allows() -> None:
    assert {key: value for key, value in DEFAULTS.items() if not KINDS[key].valid(value)} == {}


def test_every_setting_but_collections_has_one_environment_variable() -> None:
    assert sorted(ENVIRONMENT.values()) == sorted(key for key in DEFAULTS if key != "COLLECTIONS")
    assert not set(ENVIRONMENT) & set(auth_conf.ENVIRONMENT)


def test_socket_keys_are_settings_of_the_three_sockets() -> None:
    assert SOCKET_NAMES == ("rest", "graphql", "logs")
    for socket, keys in SOCKET_KEYS.items():
        assert [key.split("_", 1)[0] for key in keys] == [socket.upper()] * 5
        assert set(keys) <= set(DEFAULTS)


@pytest.mark.parametrize(("variable", "key"), ENVIRONMENT.items())
def test_every_environment_variable_lands_under_its_key(variable: str, key: str) -> None:
    text, value = SAMPLES[KINDS[key]]
    if KINDS[key] == Flag() and DEFAULTS[key] is False:  # a flag that is off by default: switched on
        text, value = "On", True
    assert value != DEFAULTS[key]
    assert from_environ({variable: text}) == {key: value}


def test_unset_and_empty_variables_leave_their_keys_to_the_defaults() -> None:
    assert from_environ({}) == {}
    assert from_environ({"WEBSOCKETS_REST_AUTH": "  ", "PUBLIC_ROLE": "", "WEBSOCKETS_UNKNOWN": "1"}) == {}


def test_one_call_reads_the_variables_of_both_apps() -> None:
    environ = {
        "PUBLIC_ROLE": "Guests",
        "WEBSOCKETS_GRAPHQL_AUTH_TIMEOUT": "1.5",
        "WEBSOCKETS_LOGS_CONN_LIMIT": "unlimited",
    }
    assert from_environ(environ) == {"PUBLIC_ROLE": "Guests", "GRAPHQL_AUTH_TIMEOUT": 1.5, "LOGS_CONN_LIMIT": None}


@pytest.mark.parametrize(
    ("variable", "text", "allowed"),
    [
        ("WEBSOCKETS_REST_AUTH", "bogus", "public, handshake, strict"),
        ("WEBSOCKETS_GRAPHQL_AUTH_TIMEOUT", "50ms", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 0.1s)"),
        ("WEBSOCKETS_HEARTBEAT_PERIOD", "500ms", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 1s)"),
        ("WEBSOCKETS_MESSAGE_MAX_BYTES", "512", "a whole number >= 1024"),
        ("QUERY_LIMIT_MAX", "0", "a whole number >= 1"),
        ("QUERY_LIMIT_DEFAULT", "unlimited", "a whole number >= 1"),
        ("WEBSOCKETS_LOGS_CONN_LIMIT", "-1", "a whole number >= 1 or 'unlimited'"),
        ("WEBSOCKETS_ENABLED", "maybe", "true, false, 1, 0, yes, no, on, off"),
        (
            "WEBSOCKETS_LOGS_PATH",
            "ws logs",
            "a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)",
        ),
        ("WEBSOCKETS_LOGS_LEVEL", "warning", "trace, debug, info, warn, error, fatal"),
        ("WEBSOCKETS_LOGS_STYLE", "fancy", "pretty, raw"),
        ("GRAPHQL_INTROSPECTION", "admins", "admin, all, off"),
    ],
)
def test_an_invalid_variable_names_itself_and_the_allowed_values(variable: str, text: str, allowed: str) -> None:
    with pytest.raises(EnvError) as raised:
        from_environ({variable: text})
    assert str(raised.value) == f"{variable}={text!r} is invalid; allowed: {allowed}."


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("REST_AUTH", "bogus", "public, handshake, strict"),
        ("GRAPHQL_AUTH", "STRICT", "public, handshake, strict"),
        ("LOGS_AUTH_TIMEOUT", 0.05, "a number of seconds >= 0.1"),
        ("REST_AUTH_TIMEOUT", "10", "a number of seconds >= 0.1"),
        ("HEARTBEAT_PERIOD", 0.5, "a number of seconds >= 1"),
        ("MESSAGE_MAX_BYTES", 512, "a whole number >= 1024"),
        ("MESSAGE_MAX_BYTES", None, "a whole number >= 1024"),
        ("QUERY_LIMIT_DEFAULT", 0, "a whole number >= 1"),
        ("QUERY_LIMIT_MAX", 10.5, "a whole number >= 1"),
        ("GRAPHQL_CONN_LIMIT", 0, "a whole number >= 1 or None (unlimited)"),
        ("ENABLED", "yes", "True, False"),
        ("LOGS_ENABLED", 1, "True, False"),
        (
            "REST_PATH",
            "websockets",
            "a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)",
        ),
        ("LOGS_LEVEL", "warning", "trace, debug, info, warn, error, fatal"),
        ("LOGS_STYLE", "fancy", "pretty, raw"),
        ("GRAPHQL_INTROSPECTION", True, "admin, all, off"),
        ("COLLECTIONS", ["products"], "a dict of collection name -> model"),
    ],
)
def test_an_invalid_python_value_fails_the_check_naming_key_and_allowed_values(
    key: str, value: Any, allowed: str
) -> None:
    with override_settings(LIKHA_REALTIME={key: value}):
        assert check_realtime_settings() == [
            error(f"LIKHA_REALTIME[{key!r}] = {value!r} is invalid; allowed: {allowed}.")
        ]


def test_every_invalid_value_is_reported() -> None:
    with override_settings(LIKHA_REALTIME={"REST_AUTH": "open", "HEARTBEAT_PERIOD": 0}):
        assert check_realtime_settings() == [
            error("LIKHA_REALTIME['REST_AUTH'] = 'open' is invalid; allowed: public, handshake, strict."),
            error("LIKHA_REALTIME['HEARTBEAT_PERIOD'] = 0 is invalid; allowed: a number of seconds >= 1."),
        ]


def test_the_values_every_variable_gives_pass_the_check() -> None:
    values = {key: SAMPLES[KINDS[key]][1] for key in ENVIRONMENT.values()}
    paths = {"REST_PATH": "/ws/x", "GRAPHQL_PATH": "/ws/y", "LOGS_PATH": "/ws/z"}  # each socket its own path
    with override_settings(LIKHA_REALTIME={**values, **paths, "PUBLIC_ROLE": "Guests", "COLLECTIONS": {}}):
        assert check_realtime_settings() == []


def mismatch(message: str) -> checks.Error:
    return checks.Error(message, hint="Fix the values in settings.LIKHA_REALTIME.", id="likha_realtime.E002")


def test_a_default_limit_above_the_maximum_fails_the_check() -> None:
    with override_settings(LIKHA_REALTIME={"QUERY_LIMIT_DEFAULT": 5000, "QUERY_LIMIT_MAX": 1000}):
        assert check_realtime_settings() == [
            mismatch("LIKHA_REALTIME['QUERY_LIMIT_DEFAULT'] = 5000 is above LIKHA_REALTIME['QUERY_LIMIT_MAX'] = 1000.")
        ]


def test_two_enabled_sockets_on_one_path_fail_the_check() -> None:
    with override_settings(LIKHA_REALTIME={"REST_PATH": "/graphql"}):
        assert check_realtime_settings() == [
            mismatch(
                "LIKHA_REALTIME['GRAPHQL_PATH'] = '/graphql' is also the path of the rest socket: "
                "only one of them would be reachable."
            )
        ]
    with override_settings(LIKHA_REALTIME={"REST_PATH": "/graphql", "GRAPHQL_ENABLED": False}):
        assert check_realtime_settings() == []


def test_socket_paths_may_use_django_path_converters() -> None:
    with override_settings(LIKHA_REALTIME={"REST_PATH": "/t/<slug:tenant>/ws"}):
        assert check_realtime_settings() == []


def test_an_unknown_key_warns_with_the_closest_key() -> None:
    with override_settings(LIKHA_REALTIME={"REST_AUHT": "strict", "GRAPHQL_AUTH_TIMEOUT": 5}):
        assert check_realtime_settings() == [
            typo("REST_AUHT", "Did you mean 'REST_AUTH'? docs/CONFIGURATION.md lists every key.")
        ]


def test_an_unknown_key_like_no_other_warns_to_remove_it() -> None:
    with override_settings(LIKHA_REALTIME={"COLOUR": "blue"}):
        assert check_realtime_settings() == [typo("COLOUR", "Remove it; docs/CONFIGURATION.md lists every key.")]


def test_the_auth_apps_keys_are_known() -> None:
    with override_settings(LIKHA_REALTIME={"PUBLIC_ROLE": "Guests"}):
        assert check_realtime_settings() == []


def test_override_settings_reloads_the_socket_settings() -> None:
    before = (socket_auth("graphql"), socket_conn_limit("graphql"), socket_path("graphql"), socket_enabled("graphql"))
    overridden = {"GRAPHQL_AUTH": "strict", "GRAPHQL_AUTH_TIMEOUT": 2, "GRAPHQL_CONN_LIMIT": 3, "GRAPHQL_PATH": "/gql"}
    with override_settings(LIKHA_REALTIME=overridden):
        assert socket_auth("graphql") == ("strict", 2.0)
        assert socket_conn_limit("graphql") == 3
        assert socket_path("graphql") == "/gql"
        assert socket_enabled("graphql") is True
    with override_settings(LIKHA_REALTIME={"ENABLED": False}):
        assert socket_enabled("graphql") is False
        assert realtime_settings.GRAPHQL_ENABLED is True
    assert (
        socket_auth("graphql"),
        socket_conn_limit("graphql"),
        socket_path("graphql"),
        socket_enabled("graphql"),
    ) == (before)


def test_unset_keys_read_their_defaults() -> None:
    with override_settings(LIKHA_REALTIME={}):
        assert [getattr(realtime_settings, key) for key in DEFAULTS] == list(DEFAULTS.values())
        assert socket_auth("logs") == ("handshake", 10.0)
        assert socket_conn_limit("logs") is None


def test_the_configuration_document_lists_every_variable_once_with_its_key() -> None:
    text = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    for variable, key in {**auth_conf.ENVIRONMENT, **ENVIRONMENT}.items():
        assert len(re.findall(rf"^\| `{variable}` \| `{key}` \|", text, flags=re.MULTILINE)) == 1, variable
    documented = re.findall(r"^\| `([A-Z_]+)` \| `[A-Z_]+` \|", text, flags=re.MULTILINE)
    assert sorted(documented) == sorted({**auth_conf.ENVIRONMENT, **ENVIRONMENT})
