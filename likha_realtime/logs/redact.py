"""``redact()``: removes tokens, passwords, ``Authorization`` values and ``access_token`` values from log text."""

from __future__ import annotations

import re

MASK = "[REDACTED]"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SECRET_KEYS = r"password|passwd|new_password|old_password|refresh_token|access_token|token|secret|api_key"
# key=value, key: value, "key": "value", 'key': 'value' (a Python dict repr), ?access_token=... in a URL.
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?P<key>["']?\b(?:{_SECRET_KEYS})\b["']?\s*[:=]\s*)
    (?P<value>\[REDACTED\]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&,;}}\]"']+)
    """
)
_AUTHORIZATION = re.compile(
    r"""(?ix)
    (?P<key>\b(?:http_)?authorization\b["']?\s*[:=]\s*["']?)
    (?:(?P<scheme>bearer|basic|token|jwt)\s+)?
    (?P<value>[^\s"',;}]+)
    """
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{MASK}{quote}"


def _mask_authorization(match: re.Match[str]) -> str:
    scheme = match.group("scheme")
    return f"{match.group('key')}{scheme + ' ' if scheme else ''}{MASK}"


def redact(text: str) -> str:
    """``text`` with every secret it visibly carries replaced by ``[REDACTED]``."""
    text = _JWT.sub(MASK, text)
    text = _AUTHORIZATION.sub(_mask_authorization, text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    return _KEY_VALUE.sub(_mask_value, text)
