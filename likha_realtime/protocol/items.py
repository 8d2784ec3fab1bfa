"""The socket's ``items`` message (PROTOCOL §6): validate it, run it through ``Items``, shape the reply."""

from __future__ import annotations

from typing import Any

from likha_realtime.items import ACTION_PERMS, Items, selector
from likha_realtime.permissions import Principal
from realtime_auth.protocol import InvalidPayload

DELETE_NEEDS_SELECTOR = "Either 'ids', 'id' or 'query' is required for a DELETE request."


def items_reply(principal: Principal, message: dict[str, Any]) -> dict[str, Any]:
    """The reply frame (without uid) for an ``items`` message; raises coded errors (sync: uses the DB)."""
    action = message.get("action")
    if action not in ACTION_PERMS:
        raise InvalidPayload('Validation error: "action" must be one of "create", "read", "update", "delete".')
    if not isinstance(message.get("collection"), str):
        raise InvalidPayload('Validation error: "collection" must be a non-empty string.')
    how, selected = selector(message)
    data, meta = _RUN[action](principal, message, how, selected)
    reply: dict[str, Any] = {"type": "items", "data": data}
    if meta:
        reply["meta"] = meta
    return reply


def _create(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    if "data" not in message:
        raise InvalidPayload('"data" is required for a CREATE request.')
    return Items(principal, message["collection"], "create", message.get("query")).create(message["data"]), None


def _read(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    items = Items(principal, message["collection"], "read", message.get("query"))
    if how == "id":
        return items.read_one(selected), None
    if how == "ids":
        return items.read_many(selected), None
    return items.read_many(), items.meta()


def _update(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    if how not in ("id", "ids"):
        raise InvalidPayload("Either 'ids' or 'id' is required for an UPDATE request.")
    items = Items(principal, message["collection"], "update", message.get("query"))
    keys = [selected] if how == "id" else selected
    return items.update(keys, message.get("data"), many=how == "ids"), None


def _delete(principal: Principal, message: dict[str, Any], how: str, selected: Any) -> tuple[Any, Any]:
    if how == "none":
        raise InvalidPayload(DELETE_NEEDS_SELECTOR)
    items = Items(principal, message["collection"], "delete", selected if how == "query" else None)
    keys = [selected] if how == "id" else selected if how == "ids" else items.keys_matching()
    deleted = items.delete(keys)
    return (deleted[0] if how == "id" else deleted), None


_RUN = {"create": _create, "read": _read, "update": _update, "delete": _delete}
