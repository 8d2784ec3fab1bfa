"""``DocumentLimits``: bounds on each GraphQL document, over HTTP and on the socket (PROTOCOL §4, §8).

``GRAPHQL_MAX_TOKENS`` (graphql-core's parser stops counting there, as strawberry's ``MaxTokensLimiter`` sets it),
``GRAPHQL_MAX_DEPTH`` and ``GRAPHQL_MAX_ALIASES`` (strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter``
validators; introspection fields do not count towards the depth). The settings are read per operation. Refused
documents run nothing; their errors carry ``extensions.code`` ``INVALID_QUERY``, as the other errors of a query.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError, Lexer, Source, TokenKind, ValidationContext, ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from likha_realtime.conf import realtime_settings

CODE = "INVALID_QUERY"
TOKENS_EXCEEDED = "tokens. Parsing aborted."  # the end of graphql-core's message for a document over max_tokens


def max_tokens() -> int:
    return int(realtime_settings.GRAPHQL_MAX_TOKENS)


def too_many_tokens(query: str, limit: int | None = None) -> GraphQLError | None:
    """The error for a document of more than ``limit`` tokens (counted as graphql-core's parser counts them,
    stopping at the first one over); ``None`` otherwise, a syntax error included (the parser reports it)."""
    limit = max_tokens() if limit is None else limit
    lexer = Lexer(Source(query))
    try:
        for _ in range(limit + 1):
            if lexer.advance().kind is TokenKind.EOF:
                return None
    except GraphQLSyntaxError:
        return None
    return coded(GraphQLError(f"Syntax Error: Document contains more than {limit} tokens. Parsing aborted."))


def coded(error: GraphQLError) -> GraphQLError:
    error.extensions = {**(error.extensions or {}), "code": CODE}
    return error


class _CodingContext:
    """What strawberry's validators use of a ``ValidationContext`` (they do all their work in ``__init__``), with
    every error they report given our code."""

    def __init__(self, context: ValidationContext) -> None:
        self._context = context
        self.document = context.document

    def report_error(self, error: GraphQLError) -> None:
        self._context.report_error(coded(error))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _coded_rule(rule: type[ValidationRule]) -> type[ValidationRule]:
    class Coded(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            rule(_CodingContext(context))  # type: ignore[arg-type]  # duck-typed: see _CodingContext
            super().__init__(context)

    Coded.__name__ = f"Coded{rule.__name__}"
    return Coded


class DocumentLimits(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = max_tokens()
        rules = (
            _coded_rule(depth_validator(int(realtime_settings.GRAPHQL_MAX_DEPTH), None, None)),
            _coded_rule(aliases_validator(int(realtime_settings.GRAPHQL_MAX_ALIASES))),
        )
        context.validation_rules = (*context.validation_rules, *rules)
        yield

    def on_parse(self) -> Iterator[None]:
        yield
        # graphql-core's own refusal (a GraphQLSyntaxError), given our code in place: strawberry already holds it.
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError) and error.message.endswith(TOKENS_EXCEEDED):
                coded(error)
