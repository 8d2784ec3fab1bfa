"""``POST /graphql`` over HTTP: Bearer JWT (checked like the sockets) or the public role."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import APIException
from strawberry.django.views import AsyncGraphQLView

from likha_realtime.access.principal import Principal
from likha_realtime.graphql.schema import get_schema
from realtime_auth.authentication import BearerSession


class GraphQLView(AsyncGraphQLView):
    graphql_ide = None

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


def _bearer_user(request: HttpRequest) -> Any:
    found = BearerSession().authenticate(request)  # type: ignore[arg-type]  # reads only HttpRequest.META
    return found[0] if found else None


def graphql_view() -> Any:
    schema = get_schema()
    if schema is None:
        return None
    return csrf_exempt(GraphQLView.as_view(schema=schema))
