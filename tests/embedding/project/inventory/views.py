"""The ERP's own views: a plain Django view and a DRF view, which the realtime apps leave as they are."""

from django.http import HttpRequest, JsonResponse
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response


def ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@api_view(["GET"])
@permission_classes([IsAuthenticated])
def stock_report(request: Request) -> Response:
    return Response({"items": 0})
