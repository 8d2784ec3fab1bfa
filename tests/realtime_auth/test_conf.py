"""realtime_auth.conf: the setting kinds (Python checks and environment parsing), ``AppSettings``, ``auth_settings``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from realtime_auth.apps import check_auth_settings
from realtime_auth.conf import (
    DEFAULTS,
    ENVIRONMENT,
    KINDS,
    AppSettings,
    Choice,
    Count,
    Dict,
    EnvError,
    Flag,
    Kind,
    Seconds,
    Text,
    UrlPath,
    auth_settings,
    parse_duration,
    parse_env,
)

MODES = Choice(("public", "handshake", "strict"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("45", 45), ("1.5", 1.5), ("500ms", 0.5), (" 2s ", 2)],
)
def test_durations_accept_units_and_plain_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "5 minutes", "1e3", "15x", "٣s"])
def test_bad_durations_are_not_durations(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        (Flag(), "true", True),
        (Flag(), "Off", False),
        (Flag(), "1", True),
        (Flag(), "NO", False),
        (MODES, "STRICT", "strict"),
        (Seconds(0.1), "500ms", 0.5),
        (Seconds(0.1), "0.1", 0.1),
        (Seconds(1), "15m", 900),
        (Count(1), "25", 25),
        (Count(1, unlimited=True), "Unlimited", None),
        (Count(1024), "1024", 1024),
        (UrlPath(), "/ws/live", "/ws/live"),
        (Text(), "Guests", "Guests"),
    ],
)
def test_kinds_parse_environment_texts(kind: Kind, text: str, value: Any) -> None:
    assert kind.parse(text) == value
    assert type(kind.parse(text)) is type(value)


@pytest.mark.parametrize(
    ("kind", "text", "allowed"),
    [
        (Flag(), "maybe", "true, false, 1, 0, yes, no, on, off"),
        (MODES, "open", "public, handshake, strict"),
        (Seconds(0.1), "50ms", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 0.1s)"),
        (Seconds(1), "soon", "a duration such as 30s, 15m, 2h, 7d or plain seconds (>= 1s)"),
        (Count(1), "0", "a whole number >= 1"),
        (Count(1), "unlimited", "a whole number >= 1"),
        (Count(1, unlimited=True), "-1", "a whole number >= 1 or 'unlimited'"),
        (Count(1024), "1023", "a whole number >= 1024"),
        (Count(1024), "1.5e3", "a whole number >= 1024"),
        (UrlPath(), "ws", "a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)"),
        (UrlPath(), "/ws?x=1", "a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)"),
    ],
)
def test_an_invalid_text_names_the_variable_and_the_allowed_texts(kind: Kind, text: str, allowed: str) -> None:
    with pytest.raises(EnvError) as error:
        parse_env("SOME_VARIABLE", text, kind)
    assert str(error.value) == f"SOME_VARIABLE={text!r} is invalid; allowed: {allowed}."
    assert error.value.name == "SOME_VARIABLE"


def test_dicts_are_set_in_python_only() -> None:
    with pytest.raises(EnvError, match=r"^X='\{\}' is invalid; allowed: a dict of name -> model\.$"):
        parse_env("X", "{}", Dict(of="name -> model"))


@pytest.mark.parametrize(
    ("kind", "good", "bad", "allowed"),
    [
        (Flag(), [True, False], ["true", 1, None], "True, False"),
        (MODES, ["public", "strict"], ["STRICT", "open", None], "public, handshake, strict"),
        (
            Seconds(0.1),
            [0.1, 10, 2.5],
            [0.05, -1, True, "10", float("inf"), float("nan")],
            "a number of seconds >= 0.1",
        ),
        (Count(1), [1, 1000], [0, None, 1.5, True, "5"], "a whole number >= 1"),
        (Count(1, unlimited=True), [None, 1], [0, "unlimited"], "a whole number >= 1 or None (unlimited)"),
        (
            UrlPath(),
            ["/", "/ws/live"],
            ["ws", "/a b", "/ws#x", 3],
            "a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)",
        ),
        (Text(), ["", "Public"], [None, 3], "a string"),
        (Dict(of="name -> model"), [{}, {"a": "b.C"}], [[], None], "a dict of name -> model"),
    ],
)
def test_kinds_check_python_values(kind: Kind, good: list[Any], bad: list[Any], allowed: str) -> None:
    assert [kind.valid(value) for value in good] == [True] * len(good)
    assert [kind.valid(value) for value in bad] == [False] * len(bad)
    assert kind.allowed == allowed


def test_the_auth_app_has_its_literal_keys_with_their_kinds_and_variables() -> None:
    assert DEFAULTS == {
        "PUBLIC_ROLE": "Public",
        "LOGIN_THROTTLE_CACHE": "default",
        "LOGIN_THROTTLE_WINDOW": 900,
        "LOGIN_ATTEMPTS_PER_ADDRESS": 600,
        "LOGIN_FAILURES_PER_ADDRESS": 50,
        "LOGIN_FAILURES_PER_ACCOUNT": 10,
        "LOGIN_TRUSTED_PROXIES": 0,
    }
    assert list(KINDS) == list(DEFAULTS)
    assert {key: key for key in DEFAULTS} == ENVIRONMENT
    assert all(KINDS[key].valid(value) for key, value in DEFAULTS.items())


def test_public_role_is_read_from_its_variable_only_when_set() -> None:
    assert auth_settings.from_environ({"PUBLIC_ROLE": " Guests "}) == {"PUBLIC_ROLE": "Guests"}
    assert auth_settings.from_environ({"PUBLIC_ROLE": "  "}) == {}
    assert auth_settings.from_environ({"WEBSOCKETS_REST_AUTH": "strict"}) == {}


def test_settings_need_a_default_and_a_kind_for_every_key() -> None:
    message = r"^Every setting needs a default and a kind; every environment variable a setting\.$"
    with pytest.raises(ValueError, match=message):
        AppSettings({"A": 1}, {}, {})
    with pytest.raises(ValueError, match=message):
        AppSettings({"A": 1}, {"A": Count()}, {"B": "B"})


def test_an_invalid_public_role_fails_the_check_naming_key_and_allowed_values() -> None:
    with override_settings(LIKHA_REALTIME={"PUBLIC_ROLE": 42}):
        assert check_auth_settings() == [
            checks.Error(
                "LIKHA_REALTIME['PUBLIC_ROLE'] = 42 is invalid; allowed: a string.",
                hint="Fix the value in settings.LIKHA_REALTIME.",
                id="realtime_auth.E001",
            )
        ]


def test_a_setting_that_is_not_a_dict_fails_the_check_and_reads_as_defaults() -> None:
    with override_settings(LIKHA_REALTIME=["PUBLIC_ROLE"]):
        assert check_auth_settings() == [
            checks.Error(
                "LIKHA_REALTIME = ['PUBLIC_ROLE'] is invalid; allowed: a dict of setting name -> value.",
                hint="Fix the value in settings.LIKHA_REALTIME.",
                id="realtime_auth.E001",
            )
        ]
        assert auth_settings.PUBLIC_ROLE == "Public"


def test_valid_settings_pass_the_check() -> None:
    with override_settings(LIKHA_REALTIME={"PUBLIC_ROLE": "Guests"}):
        assert check_auth_settings() == []


def test_override_settings_reloads_the_cached_values() -> None:
    before = auth_settings.PUBLIC_ROLE
    with override_settings(LIKHA_REALTIME={"PUBLIC_ROLE": "Guests"}):
        assert auth_settings.PUBLIC_ROLE == "Guests"
    assert before == auth_settings.PUBLIC_ROLE


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match=r"^Invalid LIKHA_REALTIME setting: 'REST_AUTH'$"):
        auth_settings.REST_AUTH  # noqa: B018
