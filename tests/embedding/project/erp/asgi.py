"""ASGI entry point of the ERP: Django for HTTP, the realtime sockets for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "erp.settings")
django_asgi_app = get_asgi_application()  # sets Django up: import the realtime routing after it

from likha_realtime.routing import build_application  # noqa: E402

application = build_application(django_asgi_app)
