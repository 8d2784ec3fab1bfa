"""GraphQL subscription events without a graphql-core execution per subscriber and row (issue 12).

Each ``<c>_mutated`` subscription yields one value per row, and strawberry executes the operation's selection set
on it (graphql-core ``execute_subscription_event``) and sends a ``next`` message: per subscriber and row, where a
REST frame is encoded once per batch. That execution was most of a busy process (py-spy) and GraphQL reached 11 % of
REST's frames/s. For a selection that is plain fields — ``key``, ``event``, ``data { <columns> }`` and
``__typename``, with aliases, no fragments, directives or arguments below the root field — the result is a fixed
projection of the row: ``Projection`` computes it with the schema's own scalar and enum ``serialize`` functions (the
ones graphql-core calls for each leaf), once per batch, row and distinct selection, and the ``next`` message is
written straight to the socket (``sockets.direct``) with the operation's id. Any other selection, the legacy
graphql-ws protocol, or a moment when the operation's own stream still has something to send (a resync, an event
queued before) takes strawberry's path, in order. ``tests/likha_realtime/graphql/test_fastlane.py`` checks the
messages equal what strawberry sends for the same events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
)

from likha_realtime.wire.codec import encode_json

TYPENAME = "__typename"


class Projection:
    """The result of a plain selection on ``<c>_mutated``, computed from a row (or a deleted key) without
    graphql-core. ``signature`` is equal for selections whose results are equal (they share one encoding)."""

    def __init__(
        self,
        root_key: str,
        mutated: GraphQLObjectType,
        fields: tuple[tuple[str, str], ...],
        data: tuple[tuple[str, str], ...],
    ) -> None:
        self.root_key = root_key
        self.mutated = mutated
        self.fields = fields  # (response key, field of <c>_mutated)
        self.data = data  # (response key, column) of ``data``'s selection
        data_type = get_named_type(mutated.fields["data"].type)
        assert isinstance(data_type, GraphQLObjectType)
        self.data_type = data_type
        self.signature = (root_key, mutated.name, fields, data)

    def result(self, key: Any, event: Any, obj: Any) -> dict[str, Any]:
        """``{"data": {root: {...}}}`` as graphql-core gives it for the value ``<c>_mutated(key, event, data=obj)``."""
        value: dict[str, Any] = {}
        for response_key, name in self.fields:
            if name == TYPENAME:
                value[response_key] = self.mutated.name
            elif name == "data":
                value[response_key] = None if obj is None else self._data(obj)
            else:
                leaf = key if name == "key" else event
                value[response_key] = _serialize(self.mutated, name, leaf)
        return {"data": {self.root_key: value}}

    def _data(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for response_key, name in self.data:
            if name == TYPENAME:
                out[response_key] = self.data_type.name
            else:
                out[response_key] = _serialize(self.data_type, name, getattr(obj, name))
        return out


def _serialize(parent: GraphQLObjectType, name: str, value: Any) -> Any:
    if value is None:
        return None
    kind = get_nullable_type(parent.fields[name].type)
    serialized = kind.serialize(value)
    if serialized is None:
        raise ValueError(f"{parent.name}.{name} serialized to null")  # graphql-core makes this an error: not ours
    return serialized


def projection(info: GraphQLResolveInfo) -> Projection | None:
    """The projection of the subscription field being resolved, or ``None`` when its selection is not plain."""
    if len(info.field_nodes) != 1:
        return None
    node = info.field_nodes[0]
    mutated = get_named_type(info.return_type)
    if node.directives or node.selection_set is None or not isinstance(mutated, GraphQLObjectType):
        return None
    fields = _plain(node.selection_set, allow={"key", "event", TYPENAME}, nested="data")
    if fields is None:
        return None
    if sum(name == "data" for _, name in fields) > 1:
        return None  # ``a: data {…} b: data {…}``: two selections of one field, each its own columns
    data: tuple[tuple[str, str], ...] = ()
    data_type = get_named_type(mutated.fields["data"].type)
    for selection in node.selection_set.selections:
        assert isinstance(selection, FieldNode)  # _plain checked
        if selection.name.value == "data":
            if selection.selection_set is None or not isinstance(data_type, GraphQLObjectType):
                return None
            columns = _plain(selection.selection_set, allow={*data_type.fields, TYPENAME})
            if columns is None:
                return None
            data = columns
    root_key = node.alias.value if node.alias else node.name.value
    return Projection(root_key, mutated, fields, data)


def _plain(
    selection_set: SelectionSetNode, *, allow: set[str], nested: str | None = None
) -> tuple[tuple[str, str], ...] | None:
    """``(response key, field)`` of a selection of plain fields (only ``nested`` has a selection of its own), or
    ``None``; a response key given twice is graphql-core's field merging: not plain."""
    found: list[tuple[str, str]] = []
    keys: set[str] = set()
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        name = selection.name.value
        if name != nested and (name not in allow or selection.selection_set is not None):
            return None
        key = selection.alias.value if selection.alias else name
        if key in keys:
            return None
        keys.add(key)
        found.append((key, name))
    return tuple(found)


class Operation:
    """A graphql-transport-ws operation whose events may take the fast lane: its id, and whether strawberry still
    runs it (not completed, still registered: the client's ``complete`` unregisters it first)."""

    __slots__ = ("_handler", "_operation", "id_json", "pk_name", "projection", "row_object")

    def __init__(
        self, handler: Any, operation: Any, projection: Projection, row_object: Callable[[Any], Any], pk_name: str
    ) -> None:
        self._handler = handler
        self._operation = operation
        self.id_json = json.dumps(operation.id)
        self.projection = projection
        self.row_object = row_object
        self.pk_name = pk_name  # the collection's key: a row's ``key``

    @property
    def running(self) -> bool:
        operation = self._operation
        return not operation.completed and self._handler.operations.get(operation.id) is operation

    def frame(self, payload_json: str) -> str:
        """The ``next`` message around an encoded payload (strawberry's ``{"id","type","payload"}``)."""
        return f'{{"id":{self.id_json},"type":"next","payload":{payload_json}}}'

    def payload_json(self, action: str, item: Any, event_value: Any) -> str:
        if action == "delete":
            result = self.projection.result(str(item), event_value, None)
        else:
            result = self.projection.result(str(item[self.pk_name]), event_value, self.row_object(item))
        return encode_json(result)


def operation_of(socket: Any, task: Any) -> tuple[Any, Any]:
    """The graphql-transport-ws handler and operation that ``task`` runs on ``socket``; ``(None, None)`` on the
    legacy protocol."""
    from likha_realtime.sockets.graphql import _TransportWSHandler

    handler = getattr(socket, "protocol_handler", None)
    if not isinstance(handler, _TransportWSHandler):
        return None, None
    for operation in handler.operations.values():
        if operation.task is task:
            return handler, operation
    return None, None
