"""``RealtimeSchema``: strawberry's schema, logging each GraphQL error by code, path and message — never the query.

strawberry 0.341.2 logs every error with ``logging.getLogger("strawberry.execution").error(error,
exc_info=error.original_error)`` (``strawberry/utils/logging.py``, called from ``BaseSchema.process_errors``), and
``str(GraphQLError)`` appends the query's source lines around each location: inline literals and filter values
(``filter: "{\\"password\\":\\"…\\"}"``) reached the logs socket. graphql-core's own messages also quote the values
they refuse (``found String 'hunter2'``, ``cannot represent non-integer value: "hunter2"``), so a message not
written by us loses its values too (``without_values``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError

from likha_realtime.logs.handler import LOCAL_ONLY
from likha_realtime.logs.redact import MASK

if TYPE_CHECKING:
    from strawberry.types import ExecutionContext

logger = logging.getLogger(__name__)

_SYNTAX = "Syntax Error: "
# graphql-core's description of the token a parser refused (``get_token_desc``): its kind, then its text quoted.
_TOKEN_KINDS = ("String", "BlockString", "Int", "Float", "Name")
_ENUM_VALUE = ("Value '", "' does not exist in '")


def without_values(message: str) -> str:
    """A graphql-core (or unexpected) message with the values it quotes masked; names of the schema stay.

    In graphql-core 3.3 values come after ``: `` (``Variable '$x' has invalid value: …``, ``… non-integer value:
    …``, ``Expected value of type 'T', found: …``), as a refused token's text (``found String '…'.``,
    ``Unexpected Int '…'.``) or as an unknown enum value (``Value '…' does not exist in 'E' enum.``). Names (fields,
    arguments, types, variables) are quoted without a colon before them and stay readable.
    """
    head = ""
    if message.startswith(_SYNTAX):
        head, message = _SYNTAX, message[len(_SYNTAX) :]
        for kind in _TOKEN_KINDS:
            for lead in (f"found {kind} '", f"Unexpected {kind} '"):
                at = message.find(lead)
                if at >= 0:
                    return f"{head}{message[: at + len(lead) - 2]} {MASK}."
    if message.startswith(_ENUM_VALUE[0]) and (end := message.rfind(_ENUM_VALUE[1])) > 0:
        message = f"Value {MASK}{message[end + 1 :]}"
    colon = message.find(": ")
    if colon >= 0:
        message = message[: colon + 2] + MASK
    return head + message


# A quoted span of our messages and Django's: "…" (with escapes), “…” (Django's validation messages), '…'.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*+"|“[^”]*+”|\'[^\']*+\'')


def unquoted(message: str) -> str:
    """One of our coded messages with every quoted span masked: they quote what the client sent (a value, and also
    the names it chose: an unknown field or operator may be a secret pasted in the wrong place), so only the
    message's shape is logged; the client got it whole."""
    return _QUOTED.sub(MASK, message)


# strawberry's exceptions for what a client sent: an empty ``query``, an ``operationName`` naming no operation.
CLIENT_ERRORS = (GraphQLError, MissingQueryError, CannotGetOperationTypeError)


def unexpected(error: GraphQLError) -> BaseException | None:
    """The exception behind ``error`` when it is not a GraphQL error or one of the client's (a resolver's bug),
    else ``None``."""
    original = error.original_error
    if original is None or isinstance(original, CLIENT_ERRORS):
        return None
    return original


def error_code(error: GraphQLError) -> str:
    """Ours (``extensions.code``), else what refused the operation: the parser, validation, or the server."""
    code = (error.extensions or {}).get("code")
    if code:
        return str(code)
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.path is None:
        return "GRAPHQL_VALIDATION_FAILED"  # the document or its variables, refused before anything ran
    return "INTERNAL"  # while resolving: a resolver's exception, or graphql-core refusing what one returned


def log_error(error: GraphQLError) -> None:
    """One line: code, path and message; an unexpected exception's traceback only in a record that never reaches
    the logs socket (``LOCAL_ONLY``). ERROR for the server's own failures (``INTERNAL``); what a client sent wrong
    (syntax, validation, our coded refusals) is a WARNING, so that no client can fill the error log at will."""
    code = error_code(error)
    path = ".".join(str(part) for part in error.path) if error.path else "-"
    ours = bool((error.extensions or {}).get("code"))
    logger.log(
        logging.ERROR if code == "INTERNAL" else logging.WARNING,
        "GraphQL error %s at %s: %s",
        code,
        path,
        unquoted(error.message) if ours else without_values(error.message),
    )
    original = unexpected(error)
    if original is not None:
        logger.error("GraphQL error %s at %s: traceback", code, path, exc_info=original, extra=LOCAL_ONLY)


class RealtimeSchema(strawberry.Schema):
    """The schema of ``build_schema``; only the logging of errors differs from strawberry's."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            log_error(error)
