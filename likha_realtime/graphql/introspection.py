"""``IntrospectionRights``: who may introspect the GraphQL schema (``GRAPHQL_INTROSPECTION``), per operation.

The schema is one for everyone and lists every field of every collection, those a caller may not read included;
so does graphql-core's "Did you mean …?" at the end of a validation error (``graphql.pyutils.did_you_mean``).
Introspection follows the setting; suggestions are kept for superusers only (they may read every field), whatever
the setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from likha_realtime.access.principal import Principal
from likha_realtime.conf import realtime_settings

SUGGESTION = " Did you mean "


def caller(context: Any) -> Principal | None:
    """The principal of an operation's context, found as ``schema.principal_of`` finds it: the socket's (kept
    current by its consumer) or the HTTP request's; ``None`` when there is none (a socket before its identity)."""
    if isinstance(context, dict) and context.get("ws") is not None:
        holder, attribute = context["ws"], "principal"
    elif isinstance(context, dict):
        holder, attribute = context.get("request"), "likha_principal"
    else:
        holder, attribute = getattr(context, "request", None), "likha_principal"
    found = getattr(holder, attribute, None)
    return found if isinstance(found, Principal) else None


def may_introspect(principal: Principal | None) -> bool:
    mode = realtime_settings.GRAPHQL_INTROSPECTION
    if mode == "all":
        return True
    return mode == "admin" and principal is not None and principal.is_superuser


def sees_schema(principal: Principal | None) -> bool:
    """Whether ``principal`` gets graphql-core's suggestions: superusers only, who may read every field. Others
    validate against the fields they may read (``graphql.readable``), and a suggestion names the whole schema's."""
    return principal is not None and principal.is_superuser


def without_suggestion(message: str) -> str:
    """``message`` without the `` Did you mean …?`` graphql-core appends to it (always last; names have no
    spaces, so the last occurrence is graphql-core's, not text quoted from the document)."""
    at = message.rfind(SUGGESTION)
    return message[:at] if at != -1 and message.endswith("?") else message


class IntrospectionRights(SchemaExtension):
    """Adds graphql-core's ``NoSchemaIntrospectionCustomRule`` (``__schema``, ``__type``; ``__typename`` stays) to
    the validation of each operation whose caller may not introspect, as strawberry's ``AddValidationRules`` adds
    rules, and cuts the suggestions from the validation errors of callers who may not see the schema."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        if not may_introspect(caller(context.context)):
            context.validation_rules = (*context.validation_rules, NoSchemaIntrospectionCustomRule)
        yield

    def on_validate(self) -> Iterator[None]:
        yield
        context = self.execution_context
        if not context.pre_execution_errors or sees_schema(caller(context.context)):
            return
        for error in context.pre_execution_errors:
            # Changed, not replaced: strawberry has already put these errors in the result it returns.
            error.message = without_suggestion(error.message)
