"""A host's own authentication backend: any active user logs in with the host's master key (besides its own
password, through Django's backend), and the backend notes what request each call brought."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

MASTER_KEY = "the-hosts-master-key"
# (username, type name of the request) of every call, for the probe to report.
CALLS: list[tuple[Any, str]] = []


class MasterKeyBackend:
    def authenticate(self, request: Any, username: Any = None, password: Any = None, **kwargs: Any) -> Any:
        CALLS.append((username, type(request).__name__))
        if password != MASTER_KEY:
            return None
        model = get_user_model()
        return model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()

    def get_user(self, user_id: Any) -> Any:
        return get_user_model()._default_manager.filter(pk=user_id).first()
