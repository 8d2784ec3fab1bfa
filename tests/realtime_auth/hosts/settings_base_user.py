"""A host with a bare ``AbstractBaseUser`` (``accounts.Account``): no ``PermissionsMixin`` (no groups, no
permissions, no superuser flag), ``USERNAME_FIELD = "login"``."""

from tests.realtime_auth.hosts.common import *  # noqa: F403
from tests.realtime_auth.hosts.common import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.realtime_auth.hosts.accounts"]
AUTH_USER_MODEL = "accounts.Account"
