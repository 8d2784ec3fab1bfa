"""``storable``: whether the text a client sent can reach a database — UTF-8 (no lone surrogate), no NUL character.

JSON escapes carry any code point (``"\\ud800"``, ``"\\u0000"``), so any string a client sends may hold either. No
database column takes a lone surrogate (UTF-8 cannot encode it: the driver raised ``UnicodeEncodeError``), and
PostgreSQL takes no NUL in text; such text is refused where it arrives, with the client's error code (PROTOCOL §4),
the same on every database, before anything looks it up or echoes it.
"""

from __future__ import annotations

from typing import Any

UNSTORABLE = "holds text that no database can take (a NUL character or a lone surrogate)."


def storable(value: Any) -> bool:
    """Whether every string in ``value`` (a JSON value: object keys too) is UTF-8 text without NUL."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True
