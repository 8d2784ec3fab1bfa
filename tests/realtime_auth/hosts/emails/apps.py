from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "tests.realtime_auth.hosts.emails"
    label = "emails"
    default_auto_field = "django.db.models.BigAutoField"
