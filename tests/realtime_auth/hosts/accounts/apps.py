from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tests.realtime_auth.hosts.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
