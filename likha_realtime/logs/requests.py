"""One INFO line per HTTP request at the ASGI level, so a host project need not add a middleware.

Skeleton: ``request_log`` is filled in by issue 10 (item 2).
"""

from __future__ import annotations

from typing import Any


def request_log(app: Any) -> Any:
    """``app`` (the HTTP application) logging each request's method, path, status and duration."""
    return app
