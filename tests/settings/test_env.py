"""Environment variables -> settings: the ``Env`` reader, ``LIKHA_REALTIME`` from the environment, start-up errors."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from likha_realtime.conf import ENVIRONMENT
from realtime_auth.conf import ENVIRONMENT as AUTH_ENVIRONMENT
from settings.env import Env, EnvError
from tests.live.harness import ROOT, server_env


def test_an_invalid_mode_names_the_variable_and_the_allowed_values() -> None:
    env = Env({"WEBSOCKETS_REST_AUTH": "bogus"})
    with pytest.raises(EnvError) as error:
        env.choice("WEBSOCKETS_REST_AUTH", "handshake", ("public", "handshake", "strict"))
    assert str(error.value) == "WEBSOCKETS_REST_AUTH='bogus' is invalid; allowed: public, handshake, strict."


def test_modes_are_case_insensitive_and_empty_means_default() -> None:
    assert Env({"M": "STRICT"}).choice("M", "handshake", ("public", "handshake", "strict")) == "strict"
    assert Env({"M": "  "}).choice("M", "handshake", ("public", "handshake", "strict")) == "handshake"


def test_conn_limits_are_unlimited_by_default_and_positive_otherwise() -> None:
    assert Env({}).int("L", None, minimum=1) is None
    assert Env({"L": "unlimited"}).int("L", None, minimum=1) is None
    assert Env({"L": "25"}).int("L", None, minimum=1) == 25
    with pytest.raises(EnvError) as error:
        Env({"L": "0"}).int("L", None, minimum=1)
    assert str(error.value) == "L='0' is invalid; allowed: a whole number >= 1 or 'unlimited'."


@pytest.mark.parametrize(("text", "value"), [("true", True), ("0", False), ("Off", False), ("yes", True)])
def test_booleans(text: str, value: bool) -> None:
    assert Env({"B": text}).bool("B", not value) is value


def test_a_bad_boolean_names_the_variable() -> None:
    with pytest.raises(EnvError) as error:
        Env({"WEBSOCKETS_ENABLED": "maybe"}).bool("WEBSOCKETS_ENABLED", True)
    assert str(error.value) == "WEBSOCKETS_ENABLED='maybe' is invalid; allowed: true, false, 1, 0, yes, no, on, off."


def test_durations_take_units_and_a_minimum() -> None:
    assert Env({"D": "15m"}).duration("D", 60, minimum=1) == 900
    assert Env({}).duration("D", 60, minimum=1) == 60
    with pytest.raises(EnvError) as error:
        Env({"D": "500ms"}).duration("D", 60, minimum=1)
    assert (
        str(error.value)
        == "D='500ms' is invalid; allowed: a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 1s)."
    )


def test_counts_without_an_unlimited_default_refuse_unlimited() -> None:
    assert Env({"N": "2000"}).int("N", 1000, minimum=1) == 2000
    with pytest.raises(EnvError) as error:
        Env({"N": "unlimited"}).int("N", 1000, minimum=1)
    assert str(error.value) == "N='unlimited' is invalid; allowed: a whole number >= 1."


def test_texts_and_lists_are_stripped() -> None:
    assert Env({"S": "  likha  "}).str("S", "x") == "likha"
    assert Env({"L": " a, ,b "}).list("L", []) == ["a", "b"]
    assert Env({"L": ""}).list("L", ["default"]) == ["default"]


def without_realtime_variables(extra: dict[str, str]) -> dict[str, str]:
    """The server environment with none of the apps' variables but ``extra`` (the developer's shell may set some)."""
    env = server_env(extra)
    for variable in [*ENVIRONMENT, *AUTH_ENVIRONMENT]:
        if variable not in extra:
            env.pop(variable, None)
    return env


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=without_realtime_variables(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("WEBSOCKETS_REST_AUTH", "bogus", "public, handshake, strict"),
        ("WEBSOCKETS_GRAPHQL_AUTH", "open", "public, handshake, strict"),
        ("WEBSOCKETS_LOGS_STYLE", "fancy", "pretty, raw"),
        ("ACCESS_TOKEN_TTL", "forever", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 1s)"),
        ("WEBSOCKETS_HEARTBEAT_ENABLED", "sometimes", "true, false, 1, 0, yes, no, on, off"),
        ("WEBSOCKETS_REST_CONN_LIMIT", "-1", "a whole number >= 1 or 'unlimited'"),
        ("WEBSOCKETS_LOGS_AUTH_TIMEOUT", "50ms", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 0.1s)"),
        ("REDIS_URL", "notaurl", "a URL such as redis://host:6379/0 (or rediss://, unix://)"),
    ],
)
def test_start_up_stops_with_one_line_naming_the_variable(name: str, value: str, allowed: str) -> None:
    result = run_check(**{name: value})
    assert result.returncode == 2
    assert result.stderr == f"configuration error: {name}={value!r} is invalid; allowed: {allowed}.\n"


def run_shell(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=without_realtime_variables(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_valid_env_vars_fill_the_likha_realtime_setting_with_only_their_keys() -> None:
    code = (
        "from django.conf import settings as s; import json; from likha_realtime.conf import socket_auth; "
        "ttl = s.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].total_seconds(); "
        "print(json.dumps([s.LIKHA_REALTIME, socket_auth('rest'), ttl], sort_keys=True))"
    )
    env = {
        "WEBSOCKETS_REST_AUTH": "strict",
        "WEBSOCKETS_REST_AUTH_TIMEOUT": "3s",
        "WEBSOCKETS_GRAPHQL_PATH": "/gql",
        "WEBSOCKETS_LOGS_CONN_LIMIT": "5",
        "WEBSOCKETS_HEARTBEAT_PERIOD": "1m",
        "WEBSOCKETS_LOGS_ENABLED": "",
        "ACCESS_TOKEN_TTL": "2s",
    }
    assert run_shell(code, env) == (
        '[{"GRAPHQL_PATH": "/gql", "HEARTBEAT_PERIOD": 60, "LOGS_CONN_LIMIT": 5, "REST_AUTH": "strict", '
        '"REST_AUTH_TIMEOUT": 3}, ["strict", 3.0], 2.0]'
    )


def test_without_variables_the_setting_is_empty_and_the_apps_use_their_defaults() -> None:
    code = (
        "from django.conf import settings as s; import json; from likha_realtime.conf import socket_auth; "
        "print(json.dumps([s.LIKHA_REALTIME, socket_auth('graphql')]))"
    )
    assert run_shell(code, {}) == '[{}, ["handshake", 10.0]]'


def test_the_local_secret_key_is_random_per_checkout_and_stable(tmp_path: Path) -> None:
    from settings.base import _local_secret_key

    first = _local_secret_key(tmp_path / ".secret_key")
    assert len(first) >= 50
    assert _local_secret_key(tmp_path / ".secret_key") == first
    other = tmp_path / "other"
    other.mkdir()
    assert _local_secret_key(other / ".secret_key") != first


def test_socket_paths_must_be_url_paths() -> None:
    assert Env({"P": "/ws/live"}).path("P", "/websockets") == "/ws/live"
    with pytest.raises(EnvError) as error:
        Env({"P": "ws"}).path("P", "/websockets")
    assert (
        str(error.value)
        == "P='ws' is invalid; allowed: a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)."
    )


@pytest.mark.parametrize(
    ("name", "value", "shown", "allowed"),
    [
        (
            "DATABASE_URL",
            "postgresql+psycopg://erp:S3cretDbPass@127.0.0.1:5432/erp",
            "postgresql+psycopg://erp:[REDACTED]@127.0.0.1:5432/erp",
            "a URL such as postgres://user@host:5432/name",
        ),
        (
            "REDIS_URL",
            "http://:S3cretRedisPass@127.0.0.1:6379/0",
            "http://:[REDACTED]@127.0.0.1:6379/0",
            "a URL such as redis://host:6379/0 (or rediss://, unix://)",
        ),
    ],
)
def test_a_refused_url_is_shown_without_its_password(name: str, value: str, shown: str, allowed: str) -> None:
    result = run_check(**{name: value})
    assert result.returncode == 2
    assert result.stderr == f"configuration error: {name}={shown!r} is invalid; allowed: {allowed}.\n"


# -- the database pool (settings.base; docs/CONFIGURATION.md, "Django and infrastructure") ------------------------


def base_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """settings/base.py run afresh under ``env`` (the loaded settings module is left alone)."""
    for name in ("DATABASE_URL", "DATABASE_POOL_MAX_SIZE", "DATABASE_POOL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "settings" / "base.py"), run_name="settings_base_afresh")


def test_postgresql_gets_a_bounded_pool_and_no_persistent_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    database = base_settings(monkeypatch, DATABASE_URL="postgres://erp@db.internal:5432/erp")["DATABASES"]["default"]
    assert database["ENGINE"] == "likha_realtime.db.postgresql"  # Django's, with likha_realtime.db.pool's check
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 20, "timeout": 30}


def test_the_pool_is_sized_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    database = base_settings(
        monkeypatch,
        DATABASE_URL="postgres://erp@db.internal:5432/erp",
        DATABASE_POOL_MAX_SIZE="1",
        DATABASE_POOL_TIMEOUT="500ms",
    )["DATABASES"]["default"]
    assert database["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 1, "timeout": 0.5}


def test_sqlite_has_no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    database = base_settings(monkeypatch, DATABASE_POOL_MAX_SIZE="5")["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert "pool" not in database["OPTIONS"]


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("DATABASE_POOL_MAX_SIZE", "0", "a whole number >= 1"),
        ("DATABASE_POOL_MAX_SIZE", "unlimited", "a whole number >= 1"),
        ("DATABASE_POOL_TIMEOUT", "50ms", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 0.1s)"),
    ],
)
def test_a_bad_pool_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, allowed: str
) -> None:
    with pytest.raises(EnvError) as raised:
        base_settings(monkeypatch, DATABASE_URL="postgres://erp@db.internal:5432/erp", **{name: value})
    assert str(raised.value) == f"{name}={value!r} is invalid; allowed: {allowed}."
