from django.apps import AppConfig


class ErpDemoConfig(AppConfig):
    name = "erp_demo"
    verbose_name = "ERP demo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from erp_demo.realtime import register_collections

        register_collections()
