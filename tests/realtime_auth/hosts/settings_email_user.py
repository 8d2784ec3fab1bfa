"""A host whose user model logs in by email (``emails.EmailAccount``): ``AbstractBaseUser`` with
``USERNAME_FIELD = "email"`` and no ``PermissionsMixin``."""

from tests.realtime_auth.hosts.common import *  # noqa: F403
from tests.realtime_auth.hosts.common import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.realtime_auth.hosts.emails"]
AUTH_USER_MODEL = "emails.EmailAccount"
