from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "tests.realtime_auth.hosts.members"
    label = "members"
    default_auto_field = "django.db.models.BigAutoField"
