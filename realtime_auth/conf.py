"""Lazily read, validated settings objects over the ``LIKHA_REALTIME`` Django setting (``auth_settings``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

SETTING_NAME = "LIKHA_REALTIME"
AUTH_MODES = ("public", "handshake", "strict")

Validator = Callable[[Any], bool]


class AppSettings:
    """One app's view of ``settings.LIKHA_REALTIME``: its keys, their defaults and validators.

    Values are read on first access and cached; ``setting_changed`` (``override_settings``) clears the cache.
    Like ``rest_framework.settings.api_settings``: nothing is read at import time.
    """

    def __init__(self, defaults: Mapping[str, Any], validators: Mapping[str, tuple[Validator, str]]) -> None:
        self.defaults = dict(defaults)
        self.validators = dict(validators)
        self._cache: dict[str, Any] = {}
        setting_changed.connect(self._on_setting_changed, weak=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.defaults:
            raise AttributeError(f"Invalid {SETTING_NAME} setting: {name!r}")
        if name not in self._cache:
            user = getattr(settings, SETTING_NAME, {}) or {}
            self._cache[name] = user.get(name, self.defaults[name])
        return self._cache[name]

    def errors(self) -> list[str]:
        """Messages for every value that fails its validator (used by the system checks)."""
        problems = []
        for name, (valid, allowed) in self.validators.items():
            value = getattr(self, name)
            if not valid(value):
                problems.append(f"{SETTING_NAME}[{name!r}] = {value!r} is invalid; allowed: {allowed}.")
        return problems

    def reload(self) -> None:
        self._cache.clear()

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == SETTING_NAME:
            self.reload()


def is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


AUTH_DEFAULTS: dict[str, Any] = {
    # Django group whose permissions the public role holds; no such group means no rights at all.
    "PUBLIC_ROLE": "Public",
}
AUTH_VALIDATORS: dict[str, tuple[Validator, str]] = {}

auth_settings = AppSettings(AUTH_DEFAULTS, AUTH_VALIDATORS)
