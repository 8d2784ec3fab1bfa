"""Typed readers for environment variables, with errors that name the variable and the allowed values."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from django.core.exceptions import ImproperlyConfigured

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class EnvError(ImproperlyConfigured):
    """An environment variable holds a value the project cannot use."""

    def __init__(self, name: str, value: str, allowed: str) -> None:
        self.name = name
        super().__init__(f"{name}={value!r} is invalid; allowed: {allowed}.")


class Env:
    """Reads variables from a mapping (``os.environ`` by default) so tests can pass their own."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        allowed = tuple(choices)
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in allowed:
            raise EnvError(name, value, ", ".join(allowed))
        return value.lower()

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise EnvError(name, value, "true, false, 1, 0, yes, no, on, off")

    def int(self, name: str, default: int | None, minimum: int = 0) -> int | None:
        """An integer >= ``minimum``; ``unlimited`` (or empty) gives ``None`` when the default is ``None``."""
        value = self.raw(name)
        if value is None or (default is None and value.lower() == "unlimited"):
            return default
        if not re.fullmatch(r"\d+", value) or int(value) < minimum:
            extra = " or 'unlimited'" if default is None else ""
            raise EnvError(name, value, f"a whole number >= {minimum}{extra}")
        return int(value)

    def duration(self, name: str, default: float, minimum: float = 0) -> float:
        """Seconds, from ``30s``, ``15m``, ``2h``, ``7d``, ``500ms`` or plain seconds."""
        value = self.raw(name)
        if value is None:
            return default
        seconds = parse_duration(value)
        if seconds is None or seconds < minimum:
            raise EnvError(name, value, f"a duration such as 30s, 15m, 2h, 7d or plain seconds (>= {minimum:g}s)")
        return seconds

    def path(self, name: str, default: str) -> str:
        """A URL path: starts with '/', no spaces, query or fragment."""
        value = self.raw(name)
        if value is None:
            return default
        if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", value):
            raise EnvError(name, value, "a URL path such as /websockets (letters, digits, . _ ~ - /)")
        return value

    def list(self, name: str, default: list[str]) -> list[str]:
        value = self.raw(name)
        if value is None:
            return default
        return [item.strip() for item in value.split(",") if item.strip()]


def parse_duration(value: str) -> float | None:
    """Seconds for a duration string, or ``None`` when it is not one."""
    match = _DURATION.match(value)
    if not match:
        return None
    number, unit = match.groups()
    seconds = float(number) * _UNITS[unit]
    return int(seconds) if seconds == int(seconds) else seconds
