"""A host with Django's own ``auth.User`` (no ``AUTH_USER_MODEL`` setting at all)."""

from tests.realtime_auth.hosts.common import *  # noqa: F403
