"""Settings over the one ``LIKHA_REALTIME`` Django setting: value kinds, ``AppSettings`` and ``auth_settings``."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

SETTING_NAME = "LIKHA_REALTIME"
AUTH_MODES = ("public", "handshake", "strict")

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_URL_PATH = re.compile(r"/[^\s?#]*")  # Django path() routes: converters such as <slug:tenant> too


def parse_duration(text: str) -> float | None:
    """Seconds for ``30s``, ``15m``, ``2h``, ``7d``, ``500ms`` or plain seconds; ``None`` when it is not a duration."""
    match = _DURATION.match(text)
    if not match:
        return None
    number, unit = match.groups()
    seconds = float(number) * _UNITS[unit]
    return int(seconds) if seconds == int(seconds) else seconds


class Kind:
    """What one setting may be: ``valid`` checks a value set in Python, ``parse`` reads an environment variable.

    ``allowed`` words the Python values for the system checks, ``allowed_text`` the environment's texts. A
    ``secret`` setting's value is never repeated in a message.
    """

    secret = False

    @property
    def allowed(self) -> str:
        raise NotImplementedError

    @property
    def allowed_text(self) -> str:
        return self.allowed

    def valid(self, value: Any) -> bool:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value of a stripped, non-empty text; ``ValueError`` when the text is not one."""
        raise ValueError(f"{type(self).__name__} settings cannot be read from the environment")


@dataclass(frozen=True)
class Flag(Kind):
    """A boolean; the environment spells it true/false, 1/0, yes/no or on/off, in any case."""

    @property
    def allowed(self) -> str:
        return "True, False"

    @property
    def allowed_text(self) -> str:
        return "true, false, 1, 0, yes, no, on, off"

    def valid(self, value: Any) -> bool:
        return isinstance(value, bool)

    def parse(self, text: str) -> bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(text)


@dataclass(frozen=True)
class Choice(Kind):
    """One of a few lowercase words; the environment's text may be in any case."""

    choices: tuple[str, ...]

    @property
    def allowed(self) -> str:
        return ", ".join(self.choices)

    def valid(self, value: Any) -> bool:
        return value in self.choices

    def parse(self, text: str) -> str:
        if text.lower() not in self.choices:
            raise ValueError(text)
        return text.lower()


@dataclass(frozen=True)
class Seconds(Kind):
    """A duration in seconds, at least ``minimum``; the environment also takes units (``parse_duration``)."""

    minimum: float = 0

    @property
    def allowed(self) -> str:
        return f"a number of seconds >= {self.minimum:g}"

    @property
    def allowed_text(self) -> str:
        return f"a duration such as 30s, 15m, 2h, 7d or plain seconds (>= {self.minimum:g}s)"

    def valid(self, value: Any) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and math.isfinite(value) and value >= self.minimum

    def parse(self, text: str) -> float:
        seconds = parse_duration(text)
        if seconds is None or seconds < self.minimum:
            raise ValueError(text)
        return seconds


@dataclass(frozen=True)
class Count(Kind):
    """A whole number, at least ``minimum``; with ``unlimited``, ``None`` (env: ``unlimited``) means no limit."""

    minimum: int = 0
    unlimited: bool = False

    @property
    def allowed(self) -> str:
        return f"a whole number >= {self.minimum}" + (" or None (unlimited)" if self.unlimited else "")

    @property
    def allowed_text(self) -> str:
        return f"a whole number >= {self.minimum}" + (" or 'unlimited'" if self.unlimited else "")

    def valid(self, value: Any) -> bool:
        if value is None:
            return self.unlimited
        return isinstance(value, int) and not isinstance(value, bool) and value >= self.minimum

    def parse(self, text: str) -> int | None:
        if self.unlimited and text.lower() == "unlimited":
            return None
        if not _WHOLE_NUMBER.fullmatch(text) or int(text) < self.minimum:
            raise ValueError(text)
        return int(text)


@dataclass(frozen=True)
class UrlPath(Kind):
    """A URL path (a Django ``path()`` route after its leading '/'): no spaces, query or fragment."""

    @property
    def allowed(self) -> str:
        return "a URL path such as /websockets or /t/<slug:tenant>/ws (no spaces, ? or #)"

    def valid(self, value: Any) -> bool:
        return isinstance(value, str) and _URL_PATH.fullmatch(value) is not None

    def parse(self, text: str) -> str:
        if not self.valid(text):
            raise ValueError(text)
        return text


@dataclass(frozen=True)
class Text(Kind):
    """Any string (an empty environment variable counts as unset)."""

    @property
    def allowed(self) -> str:
        return "a string"

    def valid(self, value: Any) -> bool:
        return isinstance(value, str)

    def parse(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class Dict(Kind):
    """A dict, set in Python only; ``of`` words its keys and values."""

    of: str

    @property
    def allowed(self) -> str:
        return f"a dict of {self.of}"

    def valid(self, value: Any) -> bool:
        return isinstance(value, dict)


class EnvError(ImproperlyConfigured):
    """An environment variable holds a value the project cannot use."""

    def __init__(self, name: str, value: str, allowed: str) -> None:
        self.name = name
        # A URL's password (postgres://user:secret@host) is not repeated on the console.
        shown = URL_PASSWORD.sub(r"\1[REDACTED]@", value)
        super().__init__(f"{name}={shown!r} is invalid; allowed: {allowed}.")


URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def env_text(environ: Mapping[str, str], name: str) -> str | None:
    """The stripped text of a variable; ``None`` when it is unset or empty."""
    value = environ.get(name)
    return None if value is None or not value.strip() else value.strip()


def parse_env(name: str, text: str, kind: Kind) -> Any:
    """The value of variable ``name`` holding ``text``; ``EnvError`` naming the variable and the allowed texts."""
    try:
        return kind.parse(text)
    except ValueError:
        raise EnvError(name, "[REDACTED]" if kind.secret else text, kind.allowed_text) from None


class AppSettings:
    """One app's view of ``settings.LIKHA_REALTIME``: its keys' defaults, kinds and environment variables.

    Values are read on first access and cached; ``setting_changed`` (``override_settings``) clears the cache.
    Like ``rest_framework.settings.api_settings``: nothing is read at import time.
    """

    def __init__(self, defaults: Mapping[str, Any], kinds: Mapping[str, Kind], environment: Mapping[str, str]) -> None:
        if set(defaults) != set(kinds) or not set(environment.values()) <= set(kinds):
            raise ValueError("Every setting needs a default and a kind; every environment variable a setting.")
        self.defaults = dict(defaults)
        self.kinds = dict(kinds)
        self.environment = dict(environment)
        self._cache: dict[str, Any] = {}
        setting_changed.connect(self._on_setting_changed, weak=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid {SETTING_NAME} setting: {name!r}")
        if name not in self._cache:
            self._cache[name] = user_settings().get(name, self.defaults[name])
        return self._cache[name]

    def errors(self) -> list[str]:
        """Messages for every value its kind does not allow (used by the system checks)."""
        problems = []
        for name, kind in self.kinds.items():
            value = getattr(self, name)
            if not kind.valid(value):
                shown = "[REDACTED]" if kind.secret else repr(value)
                problems.append(f"{SETTING_NAME}[{name!r}] = {shown} is invalid; allowed: {kind.allowed}.")
        return problems

    def from_environ(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """This app's keys whose environment variables are set, parsed; unset ones are left to ``DEFAULTS``."""
        environ = os.environ if environ is None else environ
        values = {}
        for variable, name in self.environment.items():
            text = env_text(environ, variable)
            if text is not None:
                values[name] = parse_env(variable, text, self.kinds[name])
        return values

    def reload(self) -> None:
        self._cache.clear()

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == SETTING_NAME:
            self.reload()


def user_settings() -> Mapping[str, Any]:
    """The ``LIKHA_REALTIME`` Django setting; unset (or not a dict, which ``shape_errors`` reports) reads as empty."""
    value = getattr(settings, SETTING_NAME, None)
    return value if isinstance(value, Mapping) else {}


def shape_errors() -> list[str]:
    """A message when ``LIKHA_REALTIME`` is set to something other than a dict."""
    value = getattr(settings, SETTING_NAME, {})
    if isinstance(value, Mapping):
        return []
    return [f"{SETTING_NAME} = {value!r} is invalid; allowed: a dict of setting name -> value."]


DEFAULTS: dict[str, Any] = {
    # Django group whose permissions the public role holds; no such group means no rights at all.
    "PUBLIC_ROLE": "Public",
    # Login throttling (realtime_auth.throttle, docs/CONFIGURATION.md "Login throttling"): the Django cache alias
    # holding the counts (shared by all server processes only if that cache is: Redis, not LocMem),
    "LOGIN_THROTTLE_CACHE": "default",
    # the window every count runs over (seconds),
    "LOGIN_THROTTLE_WINDOW": 900,
    # password and refresh-token logins per client address per window (None: unlimited),
    "LOGIN_ATTEMPTS_PER_ADDRESS": 600,
    # logins that did not succeed, per client address per window,
    "LOGIN_FAILURES_PER_ADDRESS": 50,
    # password logins that did not succeed, per account per window (then even the right password waits),
    "LOGIN_FAILURES_PER_ACCOUNT": 10,
    # reverse proxies in front of the server whose X-Forwarded-For entry names the client (0: trust none).
    "LOGIN_TRUSTED_PROXIES": 0,
}

KINDS: dict[str, Kind] = {
    "PUBLIC_ROLE": Text(),
    "LOGIN_THROTTLE_CACHE": Text(),
    "LOGIN_THROTTLE_WINDOW": Seconds(minimum=1),
    "LOGIN_ATTEMPTS_PER_ADDRESS": Count(minimum=1, unlimited=True),
    "LOGIN_FAILURES_PER_ADDRESS": Count(minimum=1, unlimited=True),
    "LOGIN_FAILURES_PER_ACCOUNT": Count(minimum=1, unlimited=True),
    "LOGIN_TRUSTED_PROXIES": Count(minimum=0),
}

# Environment variable -> setting key (the project's settings/base.py reads them; an ERP may too).
ENVIRONMENT: dict[str, str] = {
    "PUBLIC_ROLE": "PUBLIC_ROLE",
    "LOGIN_THROTTLE_CACHE": "LOGIN_THROTTLE_CACHE",
    "LOGIN_THROTTLE_WINDOW": "LOGIN_THROTTLE_WINDOW",
    "LOGIN_ATTEMPTS_PER_ADDRESS": "LOGIN_ATTEMPTS_PER_ADDRESS",
    "LOGIN_FAILURES_PER_ADDRESS": "LOGIN_FAILURES_PER_ADDRESS",
    "LOGIN_FAILURES_PER_ACCOUNT": "LOGIN_FAILURES_PER_ACCOUNT",
    "LOGIN_TRUSTED_PROXIES": "LOGIN_TRUSTED_PROXIES",
}

auth_settings = AppSettings(DEFAULTS, KINDS, ENVIRONMENT)
