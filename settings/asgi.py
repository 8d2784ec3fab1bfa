"""ASGI entry point: Django for HTTP, the realtime sockets for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.base")
django_asgi_app = get_asgi_application()

from likha_realtime.routing import build_application  # noqa: E402  (needs Django set up)

application = build_application(django_asgi_app)
