"""``ReadableFields``: each operation validated against the fields its caller could ever read (PROTOCOL §8).

The schema is one per deployment and its output types list every exposed field. Validated against it, a field the
caller may not read passed (and resolved to ``null``) where a name that does not exist failed: the difference told
that the field exists. So, for everyone but superusers, an operation is validated against a view of the schema
without the fields they may not read — those their collection's field rule hides, and every field but the key of a
collection they may not view — and selecting one fails exactly as selecting a name no collection has:
``Cannot query field 'credit_limit' on type 'customers'.``, with whatever else follows from a missing field (its
arguments, sub-selections and aliases are then judged as those of a missing field). Execution still runs against
the whole schema: rights that narrow while a subscription runs make a field ``null`` (PROTOCOL §8).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from typing import cast

from asgiref.sync import sync_to_async
from graphql import (
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    is_introspection_type,
    is_object_type,
    is_wrapping_type,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from likha_realtime.access.collections import registry
from likha_realtime.access.principal import Principal
from likha_realtime.graphql.introspection import caller

Hidden = frozenset[tuple[str, frozenset[str]]]  # (type name, field names the caller may not read), per collection


def hidden_fields(principal: Principal | None) -> Hidden:
    """The fields of each collection ``principal`` may never read: those its field rule hides, or, when it may not
    view the collection, all but the key (a socket without identity yet views nothing). Sync: rules may query."""
    hidden = []
    for collection in registry:
        if principal is not None and principal.has_perm(collection, "view"):
            readable = principal.readable(collection)
        else:
            readable = frozenset({collection.pk_name})
        names = frozenset(collection.fields) - readable
        if names:
            hidden.append((collection.name, names))
    return frozenset(hidden)


def _remapped(type_: GraphQLType, copies: Mapping[str, GraphQLObjectType]) -> GraphQLType:
    if is_wrapping_type(type_):
        return type(type_)(_remapped(type_.of_type, copies))
    named = cast("GraphQLNamedType", type_)  # not wrapping: a named type
    return copies.get(named.name, named)


@lru_cache(maxsize=64)
def readable_view(schema: GraphQLSchema, hidden: Hidden) -> GraphQLSchema:
    """``schema`` without the ``hidden`` fields: every object type copied (its fields pointing at the copies), so
    that every validation rule sees the same schema (graphql-core's rules read a type's ``fields`` directly, not only
    through ``TypeInfo``: a type conflict between overlapping fields would otherwise still name a hidden field's
    type). Enums, scalars and directives are shared. One view per distinct set of rules, kept for reuse."""
    copies: dict[str, GraphQLObjectType] = {
        name: type(named)(**named.to_kwargs())
        for name, named in schema.type_map.items()
        if is_object_type(named) and not is_introspection_type(named)
    }
    removed = dict(hidden)
    for name, copy in copies.items():
        fields = copy.fields  # the copy's own dict (``to_kwargs`` copies it)
        for field_name in removed.get(name, ()):
            fields.pop(field_name, None)
        for field_name, field in fields.items():
            fields[field_name] = type(field)(**{**field.to_kwargs(), "type_": _remapped(field.type, copies)})

    def root(kind: GraphQLObjectType | None) -> GraphQLObjectType | None:
        return None if kind is None else copies[kind.name]

    return GraphQLSchema(
        root(schema.query_type),
        root(schema.mutation_type),
        root(schema.subscription_type),
        types=list(copies.values()),
        directives=schema.directives,
        assume_valid=True,  # the whole schema was validated when strawberry built it
    )


class ReadableFields(SchemaExtension):
    """Validates each operation of a caller other than a superuser against ``readable_view`` (with every rule the
    other extensions added), before strawberry would validate it against the whole schema (it validates only when
    no extension did)."""

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        principal = caller(context.context)
        document = context.graphql_document
        unvalidated = context.pre_execution_errors is None and bool(context.validation_rules)
        if document is not None and unvalidated and (principal is None or not principal.is_superuser):
            hidden = await sync_to_async(hidden_fields)(principal)
            whole = context.schema._schema  # the graphql-core schema, as strawberry's own validation reads it
            view = readable_view(whole, hidden) if hidden else whole
            context.pre_execution_errors = validate_document(view, document, context.validation_rules)
        yield
