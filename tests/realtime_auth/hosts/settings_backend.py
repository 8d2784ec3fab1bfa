"""A host with Django's ``auth.User`` and an authentication backend of its own before Django's (as an LDAP or SSO
bridge would be): logins must go through it."""

from tests.realtime_auth.hosts.common import *  # noqa: F403

AUTHENTICATION_BACKENDS = [
    "tests.realtime_auth.hosts.backends.MasterKeyBackend",
    "django.contrib.auth.backends.ModelBackend",
]
