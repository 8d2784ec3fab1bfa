"""``Env``: the project's other environment variables, read with the setting kinds of ``realtime_auth.conf``."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable, Mapping
from typing import Any

from realtime_auth.conf import Choice, Count, EnvError, Flag, Kind, Seconds, Text, UrlPath, env_text, parse_env

__all__ = ["Env", "EnvError"]


class Env:
    """Reads variables from a mapping (``os.environ`` by default) so tests can pass their own.

    Empty means unset (the default); an invalid value raises ``EnvError`` naming the variable and the allowed values.
    """

    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: builtins.str) -> builtins.str | None:
        return env_text(self.environ, name)

    def read(self, name: builtins.str, kind: Kind, default: Any) -> Any:
        text = self.raw(name)
        return default if text is None else parse_env(name, text, kind)

    def str(self, name: builtins.str, default: builtins.str) -> builtins.str:
        value: builtins.str = self.read(name, Text(), default)
        return value

    def choice(self, name: builtins.str, default: builtins.str, choices: Iterable[builtins.str]) -> builtins.str:
        value: builtins.str = self.read(name, Choice(tuple(choices)), default)
        return value

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value: builtins.bool = self.read(name, Flag(), default)
        return value

    def int(self, name: builtins.str, default: builtins.int | None, minimum: builtins.int = 0) -> builtins.int | None:
        """A whole number >= ``minimum``; ``unlimited`` gives ``None`` when the default is ``None``."""
        value: builtins.int | None = self.read(name, Count(minimum, unlimited=default is None), default)
        return value

    def duration(self, name: builtins.str, default: float, minimum: float = 0) -> float:
        """Seconds, from ``30s``, ``15m``, ``2h``, ``7d``, ``500ms`` or plain seconds."""
        value: float = self.read(name, Seconds(minimum), default)
        return value

    def path(self, name: builtins.str, default: builtins.str) -> builtins.str:
        """A URL path: starts with '/', no spaces, query or fragment."""
        value: builtins.str = self.read(name, UrlPath(), default)
        return value

    def list(self, name: builtins.str, default: builtins.list[builtins.str]) -> builtins.list[builtins.str]:
        """Comma-separated items, blanks dropped."""
        text = self.raw(name)
        if text is None:
            return default
        return [item.strip() for item in text.split(",") if item.strip()]
