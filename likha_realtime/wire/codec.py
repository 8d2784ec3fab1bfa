"""The JSON codec of the JSON sockets: ``encode_json`` for every frame sent, ``decode_frame`` for every frame received
(a validated message object, or an ``InvalidPayload`` with the uid to echo)."""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from likha_realtime.wire.errors import InvalidPayload, MessageTooLarge
from realtime_auth.wire import Uid, valid_uid

UNPARSABLE = "Unable to parse the incoming message."


def encode_json(value: Any) -> str:
    """Compact JSON as every socket sends it (Decimal and datetime as strings, never NaN)."""
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), allow_nan=False)


class FrameError(InvalidPayload):
    """A frame that is not a usable message; ``uid`` is the one to echo (when it could be read)."""

    def __init__(self, message: str, uid: Uid = None) -> None:
        super().__init__(message)
        self.uid = uid


class FrameTooLarge(MessageTooLarge):
    pass


def check_size(text: str | None, data: bytes | None, max_bytes: int) -> None:
    """``FrameTooLarge`` for a frame over ``max_bytes`` (a text frame counts its UTF-8 bytes); every socket's limit."""
    size = len(data) if text is None and data is not None else len(text or "")
    if size > max_bytes or (text is not None and len(text.encode("utf-8", errors="surrogatepass")) > max_bytes):
        raise FrameTooLarge(f"Message too large: over {max_bytes} bytes.")


def loads_bounded(data: str | bytes) -> Any:
    """``json.loads``, with nesting too deep for the parser (``[[[…]]]``) and an integer over Python's 4,300 digits
    raised as ``json.JSONDecodeError`` — the error that strawberry and DRF turn into their "not JSON" answers —
    instead of a ``RecursionError`` or a plain ``ValueError`` (HTTP 500, or a GraphQL socket left open but
    answering nothing)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None
    except ValueError:  # int_max_str_digits
        raise json.JSONDecodeError("JSON number too long", "", 0) from None


def decode_frame(text: str | None, data: bytes | None, max_bytes: int, known_types: frozenset[str]) -> dict[str, Any]:
    """A JSON object with a known string ``type`` and a valid ``uid``; raises ``FrameError`` otherwise."""
    check_size(text, data, max_bytes)
    if text is None:
        raise FrameError("Binary frames are not supported; send JSON text frames.")
    try:
        message = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise FrameError(UNPARSABLE) from exc
    if not isinstance(message, dict):
        raise FrameError(f"Invalid message: expected a JSON object, received {_json_kind(message)}.")
    uid = message.get("uid")
    if not valid_uid(uid):
        raise FrameError('Invalid message: "uid" must be a string (up to 256 characters) or a finite number.')
    kind = message.get("type")
    if kind is None:
        raise FrameError('Invalid message: "type" is required.', uid)
    if not isinstance(kind, str):
        raise FrameError('Invalid message: "type" must be a string.', uid)
    if kind not in known_types:
        raise FrameError(f'Invalid message: unknown type "{kind[:64]}".', uid)
    return message


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python accepts them, browsers' JSON.parse does not


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
