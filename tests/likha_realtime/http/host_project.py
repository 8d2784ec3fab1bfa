"""A host ERP's own DRF view, its hostile ``REST_FRAMEWORK`` and its URL configurations, for the mounting tests.

``host_exception_handler`` answers in a shape of its own, so a test sees at once whose handler answered.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

HOST_TEAPOT = 418


def host_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    return Response({"host_error": type(exc).__name__}, status=HOST_TEAPOT)


class HostNegotiation:
    """A host's content negotiation that always picks its last renderer and first parser."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return next(iter(parsers))

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        renderer = list(renderers)[-1]
        return renderer, renderer.media_type


HOSTILE_REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.FormParser", "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tests.likha_realtime.http.host_project.HostNegotiation",
    "EXCEPTION_HANDLER": "tests.likha_realtime.http.host_project.host_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": "1/day", "user": "1/day"},
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 1,
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.AcceptHeaderVersioning",
    "ALLOWED_VERSIONS": ["2"],
    "DEFAULT_VERSION": None,
    "DEFAULT_METADATA_CLASS": "rest_framework.metadata.SimpleMetadata",
    "UNAUTHENTICATED_USER": "tests.likha_realtime.http.host_project.HostGuest",
    "NON_FIELD_ERRORS_KEY": "__all__",
    "URL_FORMAT_OVERRIDE": "format",
    "UNICODE_JSON": False,
    "COMPACT_JSON": False,
    "STRICT_JSON": False,
}


class HostGuest(AnonymousUser):
    """A host's user for requests without credentials that claims every right (its DRF views' business)."""

    is_authenticated = True  # type: ignore[assignment]  # a property on AnonymousUser
    is_active = True
    is_superuser = True


class HostView(APIView):
    """The host's own API: its REST_FRAMEWORK defaults apply (here: IsAuthenticated, its handler)."""

    def get(self, request: Request) -> Response:
        return Response({"host": "ok"})


def host_login(request: HttpRequest) -> JsonResponse:
    """The host's own ``/auth/login`` (why it mounts ours under a prefix)."""
    return JsonResponse({"host": "login"})


# The one documented include, at the root.
root_urlpatterns = [
    path("host/api", HostView.as_view()),
    path("", include("likha_realtime.urls")),
]

# Under a prefix, beside the host's own /auth/login.
prefixed_urlpatterns = [
    path("auth/login", host_login),
    path("realtime/", include("likha_realtime.urls")),
]

# realtime_auth alone, as before.
auth_only_urlpatterns = [
    path("auth/", include("realtime_auth.urls")),
]


class Root:
    urlpatterns = root_urlpatterns


class Prefixed:
    urlpatterns = prefixed_urlpatterns


class AuthOnly:
    urlpatterns = auth_only_urlpatterns
