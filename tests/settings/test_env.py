"""Environment variables -> settings: durations, modes, limits, and start-up errors that name the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from settings.env import Env, EnvError, parse_duration
from tests.live.harness import ROOT, server_env


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("45", 45), ("1.5", 1.5), ("500ms", 0.5), (" 2s ", 2)],
)
def test_durations_accept_units_and_plain_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "5 minutes", "1e3", "15x"])
def test_bad_durations_are_not_durations(text: str) -> None:
    assert parse_duration(text) is None


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
    with pytest.raises(EnvError, match="L='0' is invalid; allowed: a whole number >= 1 or 'unlimited'"):
        Env({"L": "0"}).int("L", None, minimum=1)


@pytest.mark.parametrize(("text", "value"), [("true", True), ("0", False), ("Off", False), ("yes", True)])
def test_booleans(text: str, value: bool) -> None:
    assert Env({"B": text}).bool("B", not value) is value


def test_a_bad_boolean_names_the_variable() -> None:
    with pytest.raises(EnvError, match="WEBSOCKETS_ENABLED='maybe' is invalid"):
        Env({"WEBSOCKETS_ENABLED": "maybe"}).bool("WEBSOCKETS_ENABLED", True)


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=server_env(env),
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
        ("ACCESS_TOKEN_TTL", "forever", "a duration such as 30s"),
        ("WEBSOCKETS_HEARTBEAT_ENABLED", "sometimes", "true, false"),
        ("WEBSOCKETS_REST_CONN_LIMIT", "-1", "a whole number >= 1 or 'unlimited'"),
    ],
)
def test_start_up_stops_with_one_line_naming_the_variable(name: str, value: str, allowed: str) -> None:
    result = run_check(**{name: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"configuration error: {name}={value!r} is invalid; allowed: {allowed}")
    assert "Traceback" not in result.stderr


def test_valid_env_vars_fill_the_likha_realtime_setting() -> None:
    code = (
        "from django.conf import settings as s; import json; r = s.LIKHA_REALTIME; "
        "print(json.dumps([r['REST_AUTH'], r['REST_AUTH_TIMEOUT'], r['GRAPHQL_PATH'], r['LOGS_CONN_LIMIT'], "
        "r['HEARTBEAT_PERIOD'], s.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].total_seconds()]))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=server_env(
            {
                "WEBSOCKETS_REST_AUTH": "strict",
                "WEBSOCKETS_REST_AUTH_TIMEOUT": "3s",
                "WEBSOCKETS_GRAPHQL_PATH": "/gql",
                "WEBSOCKETS_LOGS_CONN_LIMIT": "5",
                "WEBSOCKETS_HEARTBEAT_PERIOD": "1m",
                "ACCESS_TOKEN_TTL": "2s",
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '["strict", 3, "/gql", 5, 60, 2.0]'


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
    with pytest.raises(EnvError, match="P='ws' is invalid; allowed: a URL path such as /websockets"):
        Env({"P": "ws"}).path("P", "/websockets")
