"""The shape of a client's GraphQL socket message, checked before strawberry handles it (close 4400 otherwise).

strawberry 0.341 indexes the decoded JSON directly (``message["type"]``, ``message["payload"]["query"]``): an
array, a string, a missing ``id`` or an object as ``id`` raised ``TypeError``/``KeyError`` in its handler task, which
died and left the socket open but answering nothing. The rules are the reference graphql-ws server's
(``validateMessage``): a graphql-transport-ws client breaking them is closed with 4400 and the rule as reason.
"""

from __future__ import annotations

from typing import Any

# Fields of a subscribe (transport-ws) or start (legacy) payload that may be an object, null or missing.
_OPTIONAL_OBJECTS = ("variables", "extensions")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _operation_error(message: dict[str, Any], kind: str, payload_key: str = "payload") -> str | None:
    """A ``subscribe``/``start`` message: a non-empty string ``id`` and a payload object with a string ``query``."""
    op_id = message.get("id")
    if not isinstance(op_id, str) or not op_id:
        return f"\"{kind}\" message expects the 'id' property to be a non-empty string, but got {_kind(op_id)}"
    payload = message.get(payload_key)
    if not isinstance(payload, dict):
        return f"\"{kind}\" message expects the 'payload' property to be an object, but got {_kind(payload)}"
    if not isinstance(payload.get("query"), str):
        return f"\"{kind}\" message payload expects the 'query' property to be a string"
    for key in _OPTIONAL_OBJECTS:
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            return f"\"{kind}\" message payload expects the '{key}' property to be an object, nullish or missing"
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        return f"\"{kind}\" message payload expects the 'operationName' property to be a string, nullish or missing"
    return None


def invalid_reason(message: Any, legacy: bool = False) -> str | None:
    """Why ``message`` cannot be handled (the 4400 close reason), or ``None`` when strawberry may take it."""
    if not isinstance(message, dict):
        return f"Message is expected to be an object, but got {_kind(message)}"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "Message is missing the 'type' property" if kind is None else "Message 'type' must be a string"
    # connection_init and ping payloads are checked where they are handled (4400, and graphql-ws' wording)
    if kind == ("start" if legacy else "subscribe"):
        return _operation_error(message, kind)
    elif kind in ("stop" if legacy else "complete",):
        op_id = message.get("id")
        if not isinstance(op_id, str) or not op_id:
            return f"\"{kind}\" message expects the 'id' property to be a non-empty string, but got {_kind(op_id)}"
    return None
