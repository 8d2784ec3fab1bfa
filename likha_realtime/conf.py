"""``realtime_settings``: the likha_realtime keys of the ``LIKHA_REALTIME`` Django setting, with defaults."""

from __future__ import annotations

from typing import Any

from realtime_auth.conf import AUTH_MODES, AppSettings, Validator, is_positive_number

SOCKET_NAMES = ("rest", "graphql", "logs")

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_limit(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("/")


REALTIME_DEFAULTS: dict[str, Any] = {
    "ENABLED": True,  # all sockets on/off
    "HEARTBEAT_ENABLED": True,  # server {"type":"ping"} every period; silent clients closed 4408
    "HEARTBEAT_PERIOD": 30,  # seconds
    "LOGS_LEVEL": "info",  # lowest level the log handler publishes to the logs socket
    "LOGS_STYLE": "pretty",  # pretty (level, time, msg) | raw (every JSON-safe record attribute)
    "MESSAGE_MAX_BYTES": 1024 * 1024,  # larger client frames: INVALID_PAYLOAD then close 4413
    "QUERY_LIMIT_DEFAULT": 100,
    "QUERY_LIMIT_MAX": 1000,
    # Collections exposed from settings: name -> "app.Model" or {"model", "row_rule", "readable_fields", "fields"}
    # (dotted paths to callables). Code can also call likha_realtime.access.collections.register().
    "COLLECTIONS": {},
}
REALTIME_VALIDATORS: dict[str, tuple[Validator, str]] = {
    "ENABLED": (_is_bool, "True, False"),
    "HEARTBEAT_ENABLED": (_is_bool, "True, False"),
    "HEARTBEAT_PERIOD": (is_positive_number, "a number of seconds > 0"),
    "LOGS_LEVEL": (lambda v: v in LOG_LEVELS, ", ".join(LOG_LEVELS)),
    "LOGS_STYLE": (lambda v: v in ("pretty", "raw"), "pretty, raw"),
    "MESSAGE_MAX_BYTES": (_is_limit, "a whole number of bytes > 0"),
    "QUERY_LIMIT_DEFAULT": (_is_limit, "a whole number > 0"),
    "QUERY_LIMIT_MAX": (_is_limit, "a whole number > 0"),
    "COLLECTIONS": (lambda v: isinstance(v, dict), "a dict of collection name -> model"),
}
_PATHS = {"rest": "/websockets", "graphql": "/graphql", "logs": "/websockets/logs"}
for _socket in SOCKET_NAMES:
    _key = _socket.upper()
    REALTIME_DEFAULTS[f"{_key}_ENABLED"] = True
    REALTIME_DEFAULTS[f"{_key}_PATH"] = _PATHS[_socket]
    REALTIME_DEFAULTS[f"{_key}_CONN_LIMIT"] = None  # open connections per server process; None: unlimited
    # public | handshake | strict (PROTOCOL §3); how long the first/renewed auth may take, in seconds.
    REALTIME_DEFAULTS[f"{_key}_AUTH"] = "handshake"
    REALTIME_DEFAULTS[f"{_key}_AUTH_TIMEOUT"] = 10
    REALTIME_VALIDATORS[f"{_key}_AUTH"] = (lambda v: v in AUTH_MODES, ", ".join(AUTH_MODES))
    REALTIME_VALIDATORS[f"{_key}_AUTH_TIMEOUT"] = (is_positive_number, "a number of seconds > 0")
    REALTIME_VALIDATORS[f"{_key}_ENABLED"] = (_is_bool, "True, False")
    REALTIME_VALIDATORS[f"{_key}_PATH"] = (_is_path, "a path starting with '/'")
    REALTIME_VALIDATORS[f"{_key}_CONN_LIMIT"] = (_is_limit, "None (unlimited) or a whole number > 0")

realtime_settings = AppSettings(REALTIME_DEFAULTS, REALTIME_VALIDATORS)


def socket_enabled(socket: str) -> bool:
    return bool(realtime_settings.ENABLED and getattr(realtime_settings, f"{socket.upper()}_ENABLED"))


def socket_path(socket: str) -> str:
    return getattr(realtime_settings, f"{socket.upper()}_PATH")


def socket_conn_limit(socket: str) -> int | None:
    return getattr(realtime_settings, f"{socket.upper()}_CONN_LIMIT")


def socket_auth(socket: str) -> tuple[str, float]:
    """The auth mode and timeout (seconds) configured for one socket."""
    key = socket.upper()
    return getattr(realtime_settings, f"{key}_AUTH"), float(getattr(realtime_settings, f"{key}_AUTH_TIMEOUT"))
