"""Which browser origins (and Host headers) may open the sockets: one allow-list for all three (docs/CONFIGURATION.md).

Browsers apply no CORS to WebSocket handshakes: a page on any site may open a socket to any server, and only the
server can tell pages apart, by the ``Origin`` header the browser sets (and a page cannot). ``guard(app)`` checks it,
and the ``Host`` header, before any socket sees the connection, and refuses the handshake with HTTP 403 (a close
before accept, which daphne answers with 403).

- ``Host`` must match Django's ``ALLOWED_HOSTS`` (as Django checks it for HTTP, ``USE_X_FORWARDED_HOST`` included):
  a page on a rebinding DNS name reaches the server with its own name in ``Host``.
- ``Origin`` is allowed when it is the site's own (its host and port are the request's ``Host``), or, with
  ``LIKHA_REALTIME["WEBSOCKETS_ALLOWED_ORIGINS"]`` unset, when its host matches ``ALLOWED_HOSTS`` (any port, as
  channels' ``AllowedHostsOriginValidator``), or when it is in that list (exact ``scheme://host[:port]``); ``"*"``
  in the list allows every origin (unsafe: any page on the web may then open the sockets).
- A handshake **without** ``Origin`` (or ``Host``) is allowed: browsers always send both, so it does not come from a
  page, and a program can send whatever headers it likes anyway. SDKs, the Python ``websockets`` client and servers
  talking to servers send no ``Origin``. (channels' ``OriginValidator`` refuses a missing Origin; we must not.)

The same rules give ``cors_origins()``, the default CORS allow-list of the HTTP routes (django-cors-headers).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from likha_realtime.conf import ANY_ORIGIN, DEFAULT_PORTS, normalize_origin, realtime_settings

logger = logging.getLogger(__name__)

# Django's own fallback when DEBUG is on and ALLOWED_HOSTS is empty (HttpRequest.get_host).
DEBUG_ALLOWED_HOSTS = (".localhost", "127.0.0.1", "[::1]")
LOGGED_HEADER_CHARS = 200  # a refused header is logged, cut to this length


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` as Django applies it."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        return list(DEBUG_ALLOWED_HOSTS)
    return hosts


def host_allowed(host: str) -> bool:
    """A ``Host`` value (``name[:port]``) that ``ALLOWED_HOSTS`` accepts, as ``HttpRequest.get_host`` decides."""
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts())


class Origin(NamedTuple):
    """An origin as a browser sends it: ``scheme`` (http or https), ``domain`` (lowercase, IPv6 in brackets) and
    ``port`` (the scheme's default when the origin names none)."""

    scheme: str
    domain: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Origin | None:
        """``None`` for ``null`` (sandboxed pages, files), other schemes and anything that is not an origin."""
        normalized = normalize_origin(text)
        if normalized is None:
            return None
        parts = urlsplit(normalized)
        domain, port = split_domain_port(parts.netloc)
        return cls(parts.scheme, domain, int(port) if port else DEFAULT_PORTS[parts.scheme])

    def is_host(self, host: str) -> bool:
        """Same origin: this origin's domain and port are those of ``host`` (a ``Host`` value; no port there means
        the default port of this origin's scheme). Schemes are not compared: TLS ended at a proxy makes an https
        page reach the server over plain http, with the same ``Host``."""
        domain, port = split_domain_port(host)
        return bool(domain) and (domain, int(port) if port else DEFAULT_PORTS[self.scheme]) == (self.domain, self.port)


def allowed_origins() -> list[str] | None:
    """``WEBSOCKETS_ALLOWED_ORIGINS`` normalized (``"*"`` kept); ``None`` when unset (the site's own hosts)."""
    configured = realtime_settings.WEBSOCKETS_ALLOWED_ORIGINS
    if configured is None:
        return None
    return [ANY_ORIGIN if item == ANY_ORIGIN else normalize_origin(item) or item for item in configured]


def origin_allowed(origin: str, host: str | None) -> bool:
    """May a page of ``origin`` open a socket of a server reached as ``host`` (the ``Host`` header, if any)?"""
    configured = allowed_origins()
    if configured is not None and ANY_ORIGIN in configured:
        return True
    parsed = Origin.parse(origin)
    if parsed is None:
        return False
    if host is not None and parsed.is_host(host):
        return True
    if configured is None:
        return validate_host(parsed.domain, allowed_hosts())
    return normalize_origin(origin) in configured


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> tuple[str | None, bool]:
    """The one value of header ``name`` (``None`` when absent) and whether it is unambiguous (not sent twice)."""
    values = [value.decode("latin1") for key, value in headers if key.lower() == name]
    return (values[0] if values else None), len(values) <= 1


def request_host(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The host a handshake was sent to, as Django's ``get_host`` reads it (``X-Forwarded-Host`` when
    ``USE_X_FORWARDED_HOST``), and whether it is unambiguous."""
    if settings.USE_X_FORWARDED_HOST:
        forwarded, single = _header(headers, b"x-forwarded-host")
        if forwarded is not None or not single:
            return forwarded, single
    return _header(headers, b"host")


def refusal(scope: dict[str, Any]) -> str | None:
    """Why a WebSocket handshake must be refused (a log message), or ``None`` when it may go on."""
    headers = scope.get("headers") or []
    host, single_host = request_host(headers)
    if not single_host:
        return "more than one Host header"
    if host is not None and not host_allowed(host):
        return f"Host {host[:LOGGED_HEADER_CHARS]!r} is not in ALLOWED_HOSTS"
    origin, single_origin = _header(headers, b"origin")
    if not single_origin:
        return "more than one Origin header"
    if origin is not None and not origin_allowed(origin, host):
        return f"origin {origin[:LOGGED_HEADER_CHARS]!r} is not allowed (WEBSOCKETS_ALLOWED_ORIGINS)"
    return None


async def refuse(receive: Any, send: Any) -> None:
    """Answer the handshake with a close before accept: daphne sends HTTP 403 and no socket is opened."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


class OriginGuard:
    """The ASGI application ``app`` behind the Host and Origin checks (WebSocket scopes only)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"The origin guard is for WebSocket connections, not {scope['type']!r} ones.")
        reason = refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        # The path only: the query string may hold ?access_token=.
        # The path is the client's: escaped (``\n``, ``\x1b``), so that it cannot end the line and forge another.
        path = str(scope.get("path", "")).encode("unicode_escape").decode("ascii")
        logger.warning("WebSocket handshake to %s refused (HTTP 403): %s", path, reason)
        await refuse(receive, send)


def guard(app: Any) -> Any:
    """``app`` (the WebSocket router) behind the origin and Host checks."""
    return OriginGuard(app)


# -- CORS for the HTTP routes (django-cors-headers settings) -------------------------------------------------------


class CorsOrigins(NamedTuple):
    """django-cors-headers' ``CORS_ALLOW_ALL_ORIGINS``, ``CORS_ALLOWED_ORIGINS`` and ``CORS_ALLOWED_ORIGIN_REGEXES``."""

    allow_all: bool
    origins: list[str]
    regexes: list[str]


def host_origin_regex(pattern: str) -> str:
    """A regex of the http(s) origins, any port, whose host matches one ``ALLOWED_HOSTS`` pattern (``.example.com``:
    the domain and its subdomains, as Django's ``is_same_domain``)."""
    pattern = pattern.lower()
    subdomains = pattern.startswith(".")
    host = rf"(?:[a-z0-9.-]+\.)?{re.escape(pattern[1:])}" if subdomains else re.escape(pattern)
    return rf"^https?://{host}(?::[0-9]+)?$"


def cors_origins(
    cors_allowed: Sequence[str] | None,
    socket_allowed: Sequence[str] | None,
    hosts: Sequence[str],
    *,
    debug: bool = False,
) -> CorsOrigins:
    """The CORS allow-list: ``cors_allowed`` (``CORS_ALLOWED_ORIGINS``) when given, else the sockets' list
    (``WEBSOCKETS_ALLOWED_ORIGINS``) when given, else the http(s) origins whose host matches ``hosts``
    (``ALLOWED_HOSTS``; with ``debug`` and none, Django's local ones), any port. ``"*"`` allows every origin.
    Entries are normalized as browsers send them (lowercase, no default port)."""
    chosen = cors_allowed if cors_allowed is not None else socket_allowed
    if chosen is None:
        hosts = hosts or (DEBUG_ALLOWED_HOSTS if debug else ())
        if "*" in hosts:
            return CorsOrigins(True, [], [])
        return CorsOrigins(False, [], [host_origin_regex(pattern) for pattern in hosts])
    if ANY_ORIGIN in chosen:
        return CorsOrigins(True, [], [])
    origins = []
    for item in chosen:
        normalized = normalize_origin(item)
        if normalized is None:
            raise ValueError(f"{item!r} is not an origin (scheme://host[:port], http or https, no path).")
        origins.append(normalized)
    return CorsOrigins(False, origins, [])


def cors_urls_regex(graphql_path: str = "/graphql", prefix: str = "/") -> str:
    """``CORS_URLS_REGEX`` for this project's HTTP routes only (``/auth/*``, ``/items/*``, ``/server/info`` and the
    GraphQL path), mounted under ``prefix``: the host's other URLs get no CORS headers."""
    graphql = re.sub(r"<[^>]*>", "[^/]+", re.escape(graphql_path.strip("/")))  # Django converters: one segment
    base = re.escape(prefix.strip("/") + "/") if prefix.strip("/") else ""
    return rf"^/{base}(?:auth/(?:login|refresh|logout)$|items(?:/|$)|server/info$|{graphql}$)"
