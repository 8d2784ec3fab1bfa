"""App config for likha_realtime: registers the system checks of its settings and of the deployment (``checks``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class LikhaRealtimeConfig(AppConfig):
    name = "likha_realtime"
    verbose_name = "Likha realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from likha_realtime import checks as deployment_checks
        from likha_realtime.access.collections import registry
        from likha_realtime.conf import realtime_settings
        from likha_realtime.events import capture
        from likha_realtime.query.lookups import register_lookups

        checks.register(check_realtime_settings)
        deployment_checks.register()
        register_lookups()
        registry.load_settings(realtime_settings.COLLECTIONS)
        capture.connect_signals()
        install_log_handler()


def install_log_handler() -> bool:
    """Stream this process's logs to the logs sockets, when there is a channel layer and a logs socket to feed.

    Tests that want the handler call ``likha_realtime.logs.handler.install()`` themselves.
    """
    from django.conf import settings

    from likha_realtime.conf import socket_enabled
    from likha_realtime.logs import handler

    if not (getattr(settings, "CHANNEL_LAYERS", None) or {}).get("default") or not socket_enabled("logs"):
        return False
    handler.install()
    return True


def check_realtime_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every likha_realtime value its kind allows (E001), values that fit together (E002); keys that neither
    app knows, likely typos (W001)."""
    from likha_realtime.conf import consistency_errors, realtime_settings, unknown_keys
    from realtime_auth.conf import SETTING_NAME

    problems: list[checks.CheckMessage] = [
        checks.Error(message, hint=f"Fix the value in settings.{SETTING_NAME}.", id="likha_realtime.E001")
        for message in realtime_settings.errors()
    ]
    problems += [
        checks.Error(message, hint=f"Fix the values in settings.{SETTING_NAME}.", id="likha_realtime.E002")
        for message in consistency_errors()
    ]
    for key, close in unknown_keys():
        fix = f"Did you mean {close!r}?" if close else "Remove it;"
        problems.append(
            checks.Warning(
                f"{SETTING_NAME}[{key!r}] is not a setting of likha_realtime or realtime_auth.",
                hint=f"{fix} docs/CONFIGURATION.md lists every key.",
                id="likha_realtime.W001",
            )
        )
    return problems
