"""App config for realtime_auth: registers the system checks of its settings and of the deployment (``checks``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core import checks


class RealtimeAuthConfig(AppConfig):
    name = "realtime_auth"
    verbose_name = "Realtime auth"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from realtime_auth import checks as deployment_checks
        from realtime_auth import signals

        checks.register(check_auth_settings, checks.Tags.security)
        deployment_checks.register()
        signals.connect_signals()


def check_auth_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings

    from realtime_auth.conf import SETTING_NAME, auth_settings, shape_errors

    problems: list[checks.CheckMessage] = [
        checks.Error(message, hint=f"Fix the value in settings.{SETTING_NAME}.", id="realtime_auth.E001")
        for message in [*shape_errors(), *auth_settings.errors()]
    ]
    if "rest_framework_simplejwt.token_blacklist" not in settings.INSTALLED_APPS:
        problems.append(
            checks.Error(
                "Refresh-token rotation needs simplejwt's blacklist app.",
                hint="Add 'rest_framework_simplejwt.token_blacklist' to INSTALLED_APPS.",
                id="realtime_auth.E002",
            )
        )
    return problems
