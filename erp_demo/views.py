"""The live demo page at ``/``: one HTML page whose script (static/erp_demo/demo.js) talks to the realtime sockets."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from erp_demo.management.commands.seed_demo import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    EDITOR_EMAIL,
    EDITOR_PASSWORD,
)

# What the page lists under "Demo accounts": the logins seed_demo creates (imported, so the page never drifts from
# them), with the rights the seeded groups give.
DEMO_ACCOUNTS = (
    {
        "email": EDITOR_EMAIL,
        "password": EDITOR_PASSWORD,
        "rights": "group Editors: view, add and change products; view customers and sales orders",
    },
    {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "rights": "superuser: everything, and the live log stream"},
)
PUBLIC_RIGHTS = "group Public: view products (id, name, sku, price, status, updated; no stock)"


@require_safe
def demo(request: HttpRequest) -> HttpResponse:
    """The page itself is static: everything live is fetched by its script (/server/info, /auth, the sockets)."""
    return render(request, "erp_demo/demo.html", {"accounts": DEMO_ACCOUNTS, "public_rights": PUBLIC_RIGHTS})
