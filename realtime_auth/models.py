"""realtime_auth's one model: revoked login sessions. It defines no user model: it works with the host's
``settings.AUTH_USER_MODEL`` (always through ``get_user_model()``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class RevokedSession(models.Model):
    """A login session (the tokens' ``sid`` claim) that was logged out or whose user's credentials changed.

    Access tokens of a revoked session are refused until they expire; rows older than the access-token
    lifetime are useless and pruned by ``prune_revoked_sessions``.
    """

    session_id = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.session_id
