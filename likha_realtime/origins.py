"""Which browser origins (and Host headers) may open the sockets: one allow-list for all three (docs/EMBEDDING.md).

Skeleton: ``guard`` is filled in by the origins work of issue 10 (item 4).
"""

from __future__ import annotations

from typing import Any


def guard(app: Any) -> Any:
    """``app`` (the WebSocket router) behind the origin and Host checks."""
    return app
