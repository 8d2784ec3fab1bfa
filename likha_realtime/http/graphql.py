"""``POST /graphql`` over HTTP: Bearer JWT (checked like the sockets) or the public role."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from rest_framework.exceptions import APIException
from strawberry.django.views import AsyncGraphQLView
from strawberry.types import ExecutionResult

from likha_realtime.access.principal import Principal
from likha_realtime.conf import realtime_settings
from likha_realtime.graphql.limits import max_tokens
from likha_realtime.graphql.schema import get_schema
from likha_realtime.wire.codec import loads_bounded
from realtime_auth.authentication import BearerSession

SUBSCRIPTIONS_ON_THE_SOCKET = "Subscriptions are served on the GraphQL socket (graphql-transport-ws), not over HTTP."


class GraphQLView(AsyncGraphQLView):
    """strawberry's view with our auth; queries and mutations only.

    A subscription over HTTP (strawberry would stream it as multipart or server-sent events) is refused: its rights
    would be the request's for as long as it runs, and rights changes (PROTOCOL §3) reach sockets, not requests.
    """

    def decode_json(self, data: str | bytes) -> object:
        return loads_bounded(data)

    async def execute_operation(
        self, request: Any, request_adapter: Any, request_data: Any, *args: Any, **kwargs: Any
    ) -> Any:
        batch = request_data if isinstance(request_data, list) else [request_data]
        if any(_is_subscription(data) for data in batch):
            error = GraphQLError(SUBSCRIPTIONS_ON_THE_SOCKET, extensions={"code": "INVALID_PAYLOAD"})
            return ExecutionResult(data=None, errors=[error])
        return await super().execute_operation(request, request_adapter, request_data, *args, **kwargs)

    async def dispatch(  # type: ignore[override]  # an async view: View's stub knows only the sync dispatch
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        try:
            user = await sync_to_async(_bearer_user)(request)
        except APIException:
            return JsonResponse(
                {"errors": [{"message": "Invalid token.", "extensions": {"code": "INVALID_TOKEN"}}]}, status=401
            )
        request.likha_principal = await sync_to_async(Principal)(user)  # type: ignore[attr-defined]  # for the schema
        return await super().dispatch(request, *args, **kwargs)


def _is_subscription(data: Any) -> bool:
    query = getattr(data, "query", None)
    if not isinstance(query, str) or "subscription" not in query:  # the keyword is needed: most requests stop here
        return False
    try:
        operation = get_operation_ast(parse(query, max_tokens=max_tokens()), getattr(data, "operation_name", None))
    except GraphQLError:
        return False  # strawberry reports the syntax error
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


def _bearer_user(request: HttpRequest) -> Any:
    found = BearerSession().authenticate(request)  # type: ignore[arg-type]  # reads only HttpRequest.META
    return found[0] if found else None


def graphql_view() -> Any:
    schema = get_schema()
    if schema is None:
        return None
    # strawberry's GraphiQL page loads React and GraphiQL from a public CDN: off unless GRAPHQL_IDE says so (a
    # machine without internet would show "Loading..." for ever; a page of third-party scripts on the API's origin).
    ide = "graphiql" if realtime_settings.GRAPHQL_IDE else None
    return csrf_exempt(GraphQLView.as_view(schema=schema, graphql_ide=ide))
