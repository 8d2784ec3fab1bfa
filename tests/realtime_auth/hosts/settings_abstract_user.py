"""A host with its own ``AbstractUser`` subclass (``members.Member``: login by ``username``)."""

from tests.realtime_auth.hosts.common import *  # noqa: F403
from tests.realtime_auth.hosts.common import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.realtime_auth.hosts.members"]
AUTH_USER_MODEL = "members.Member"
