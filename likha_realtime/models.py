"""``LogsAccess``: no table, only the ``likha_realtime.view_logs`` permission that opens the logs socket."""

from __future__ import annotations

from django.db import models


class LogsAccess(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_logs", "Can watch the server log stream")]

    def __str__(self) -> str:
        return "logs access"
