"""App config for likha_realtime: registers the system checks of its settings."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class LikhaRealtimeConfig(AppConfig):
    name = "likha_realtime"
    verbose_name = "Likha realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from likha_realtime.access.collections import registry
        from likha_realtime.conf import realtime_settings
        from likha_realtime.events import capture
        from likha_realtime.query.lookups import register_lookups

        checks.register(check_realtime_settings)
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
    from likha_realtime.conf import realtime_settings

    return [
        checks.Error(message, hint="Fix the value in settings.LIKHA_REALTIME.", id="likha_realtime.E001")
        for message in realtime_settings.errors()
    ]
