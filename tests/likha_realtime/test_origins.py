"""One allow-list of browser origins for the three sockets, and the Host check (likha_realtime.origins, PROTOCOL §1).

Handshakes go through ``websocket_application()`` (the router behind ``origins.guard``) with the headers a browser
would send; a refused one is closed before accept (daphne answers HTTP 403: tests/live/test_origins_live.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.checks import run_checks
from django.test import override_settings

from likha_realtime.conf import Origins, from_environ, realtime_settings
from likha_realtime.graphql.schema import get_schema
from likha_realtime.origins import (
    CorsOrigins,
    cors_origins,
    cors_urls_regex,
    guard,
    host_origin_regex,
    normalize_origin,
)
from likha_realtime.routing import websocket_application
from likha_realtime.sockets.graphql import GraphQLConsumer
from realtime_auth.conf import EnvError
from tests.likha_realtime.graphql.support import communicator
from tests.likha_realtime.support import FRAME_WAIT, realtime

pytestmark = pytest.mark.django_db(transaction=True)

SOCKETS = {"rest": "/websockets", "graphql": "/graphql", "logs": "/websockets/logs"}
SUBPROTOCOLS = {"graphql": ["graphql-transport-ws"]}
HOSTS = ["erp.example.com", ".example.org", "127.0.0.1", "localhost"]
Headers = dict[str, str | list[str]]


def header_list(headers: Headers) -> list[tuple[bytes, bytes]]:
    pairs = []
    for name, values in headers.items():
        for value in [values] if isinstance(values, str) else values:
            pairs.append((name.encode(), value.encode("latin1")))
    return pairs


async def handshake(headers: Headers, socket: str = "rest", app: Any = None, query: str = "") -> str:
    """``accepted`` or ``refused`` (closed before accept, no close code: daphne's 403) for one handshake."""
    path = SOCKETS[socket] + (f"?{query}" if query else "")
    comm = WebsocketCommunicator(
        app or websocket_application(), path, headers=header_list(headers), subprotocols=SUBPROTOCOLS.get(socket)
    )
    await comm.send_input({"type": "websocket.connect"})
    output = await comm.receive_output(timeout=FRAME_WAIT)
    if output["type"] == "websocket.accept":
        await comm.disconnect()
        return "accepted"
    assert output == {"type": "websocket.close"}, output
    await comm.wait(timeout=FRAME_WAIT)
    return "refused"


# -- the default: the site's own hosts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "outcome"),
    [
        ("http://erp.example.com", "erp.example.com", "accepted"),  # same origin
        ("https://erp.example.com", "erp.example.com:8000", "accepted"),  # a host of ALLOWED_HOSTS, any port
        ("https://erp.example.com:8443", "erp.example.com", "accepted"),
        ("https://shop.example.org", "erp.example.com", "accepted"),  # .example.org: the domain and subdomains
        ("https://example.org", "erp.example.com", "accepted"),
        ("http://localhost:5173", "127.0.0.1:8000", "accepted"),  # strawberry refused this one on /graphql
        ("http://[::1]:5173", "127.0.0.1:8000", "refused"),  # [::1] is not in these ALLOWED_HOSTS
        ("https://evil.example", "erp.example.com", "refused"),
        ("https://example.org.evil.example", "erp.example.com", "refused"),
        ("https://erp.example.com.evil.example", "erp.example.com", "refused"),
        ("https://evilexample.org", "erp.example.com", "refused"),
        ("null", "erp.example.com", "refused"),  # sandboxed frames, file:// pages
        ("file://", "erp.example.com", "refused"),
        ("chrome-extension://abcdef", "erp.example.com", "refused"),
        ("ftp://erp.example.com", "erp.example.com", "refused"),
        ("https://user@erp.example.com", "erp.example.com", "refused"),
        ("https://erp.example.com/path", "erp.example.com", "refused"),
        ("", "erp.example.com", "refused"),
        ("erp.example.com", "erp.example.com", "refused"),
        ("https://érp.example.com", "erp.example.com", "refused"),
    ],
)
async def test_by_default_the_origins_of_the_allowed_hosts_may_connect(origin: str, host: str, outcome: str) -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS):
        assert await handshake({"origin": origin, "host": host}) == outcome


async def test_by_default_the_same_origin_may_connect_whatever_its_port() -> None:
    # ALLOWED_HOSTS names hosts, not ports: any port of an allowed host is the site's own, as for channels'
    # AllowedHostsOriginValidator; the scheme is not compared (TLS may end at a proxy).
    with override_settings(ALLOWED_HOSTS=["erp.example.com"]):
        assert await handshake({"origin": "https://erp.example.com", "host": "erp.example.com:80"}) == "accepted"
        assert await handshake({"origin": "http://erp.example.com:9000", "host": "erp.example.com"}) == "accepted"


async def test_debug_without_allowed_hosts_allows_the_local_hosts_as_django_does() -> None:
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert await handshake({"origin": "http://app.localhost:5173", "host": "127.0.0.1:8000"}) == "accepted"
        assert await handshake({"origin": "https://evil.example", "host": "127.0.0.1:8000"}) == "refused"
    with override_settings(ALLOWED_HOSTS=[], DEBUG=False):
        assert await handshake({"origin": "http://localhost:5173", "host": "127.0.0.1:8000"}) == "refused"


# -- a configured list ----------------------------------------------------------------------------------------------

LISTED = ["https://app.example.com", "http://localhost:5173"]


@pytest.mark.parametrize(
    ("origin", "outcome"),
    [
        ("https://app.example.com", "accepted"),
        ("https://app.example.com:443", "accepted"),  # the default port, written out
        ("HTTPS://APP.EXAMPLE.COM", "accepted"),
        ("http://localhost:5173", "accepted"),
        ("http://app.example.com", "refused"),  # another scheme
        ("https://app.example.com:8443", "refused"),  # another port
        ("http://localhost:5174", "refused"),
        ("http://localhost", "refused"),
        ("https://sub.app.example.com", "refused"),  # no patterns in the list: exact origins only
        ("https://erp.example.com:8443", "refused"),  # a host of ALLOWED_HOSTS, but the list replaces them
        ("https://evil.example", "refused"),
        ("null", "refused"),
    ],
)
async def test_a_configured_list_allows_exactly_its_origins(origin: str, outcome: str) -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=LISTED):
        assert await handshake({"origin": origin, "host": "erp.example.com"}) == outcome


async def test_with_a_list_the_site_itself_is_still_allowed() -> None:
    # As Django's CSRF check: the site's own origin is always trusted (its Host is checked against ALLOWED_HOSTS).
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=LISTED):
        assert await handshake({"origin": "https://erp.example.com", "host": "erp.example.com"}) == "accepted"
        assert await handshake({"origin": "https://erp.example.com", "host": "erp.example.com:8000"}) == "refused"
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=[]):
        assert await handshake({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}) == "accepted"
        assert await handshake({"origin": "http://localhost:8000", "host": "127.0.0.1:8000"}) == "refused"


async def test_a_star_allows_every_origin_but_not_every_host() -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=["*"]):
        for origin in ("https://evil.example", "null", "http://localhost:1"):
            assert await handshake({"origin": origin, "host": "erp.example.com"}) == "accepted"
        assert await handshake({"origin": "https://evil.example", "host": "evil.example"}) == "refused"


# -- missing, repeated and forged headers ------------------------------------------------------------------------


async def test_a_handshake_without_origin_is_not_from_a_browser_and_is_allowed() -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=LISTED):
        assert await handshake({"host": "erp.example.com"}) == "accepted"
        assert await handshake({}) == "accepted"


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "erp.example.com.evil.example", "", "erp.example.com:abc", "bad host"],
)
async def test_a_host_outside_allowed_hosts_is_refused_with_or_without_origin(host: str) -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS):
        assert await handshake({"host": host}) == "refused"
        assert await handshake({"host": host, "origin": f"http://{host}"}) == "refused"  # "same origin" too


async def test_allowed_hosts_star_accepts_any_host() -> None:
    with override_settings(ALLOWED_HOSTS=["*"]), realtime(WEBSOCKETS_ALLOWED_ORIGINS=LISTED):
        assert await handshake({"host": "anything.example"}) == "accepted"
        assert await handshake({"host": "anything.example", "origin": "https://evil.example"}) == "refused"


async def test_repeated_origin_or_host_headers_are_refused() -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS):
        twice = {"host": "erp.example.com", "origin": ["https://erp.example.com", "https://evil.example"]}
        assert await handshake(twice) == "refused"
        assert await handshake({"host": ["erp.example.com", "erp.example.com"]}) == "refused"


async def test_header_names_in_any_case_are_read() -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS):
        assert await handshake({"Host": "erp.example.com", "Origin": "https://evil.example"}) == "refused"
        assert await handshake({"HOST": "evil.example"}) == "refused"


async def test_x_forwarded_host_is_the_host_only_when_django_is_told_to_use_it() -> None:
    forwarded = {"host": "127.0.0.1:8000", "x-forwarded-host": "evil.example"}
    with override_settings(ALLOWED_HOSTS=HOSTS, USE_X_FORWARDED_HOST=False):
        assert await handshake(forwarded) == "accepted"
    with override_settings(ALLOWED_HOSTS=HOSTS, USE_X_FORWARDED_HOST=True):
        assert await handshake(forwarded) == "refused"
        proxied = {"host": "10.0.0.5:8000", "x-forwarded-host": "erp.example.com", "origin": "https://erp.example.com"}
        assert await handshake(proxied) == "accepted"


# -- every socket, the log line ----------------------------------------------------------------------------------


@pytest.mark.parametrize("socket", list(SOCKETS))
async def test_every_socket_uses_the_one_list(socket: str) -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=LISTED):
        good = {"origin": "http://localhost:5173", "host": "127.0.0.1:8000"}
        assert await handshake(good, socket) == "accepted"
        assert await handshake({"origin": "https://evil.example", "host": "127.0.0.1:8000"}, socket) == "refused"
        assert await handshake({"host": "127.0.0.1:8000"}, socket) == "accepted"
        assert await handshake({"origin": "http://localhost:5173", "host": "evil.example"}, socket) == "refused"


@pytest.mark.parametrize("socket", list(SOCKETS))
async def test_every_socket_allows_the_allowed_hosts_by_default(socket: str) -> None:
    with override_settings(ALLOWED_HOSTS=HOSTS):
        assert await handshake({"origin": "http://localhost:5173", "host": "127.0.0.1:8000"}, socket) == "accepted"
        assert await handshake({"origin": "https://evil.example", "host": "127.0.0.1:8000"}, socket) == "refused"


async def test_a_refusal_is_logged_at_warning_without_the_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="likha_realtime.origins")
    with override_settings(ALLOWED_HOSTS=HOSTS):
        evil = {"origin": "https://evil.example", "host": "erp.example.com"}
        assert await handshake(evil, query="access_token=SECRET-TOKEN") == "refused"
        assert await handshake({"host": "evil.example"}, "logs", query="access_token=SECRET-TOKEN") == "refused"
        assert await handshake({"origin": "https://erp.example.com", "host": "erp.example.com"}) == "accepted"
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "likha_realtime.origins"]
    assert records == [
        (
            logging.WARNING,
            "WebSocket handshake to /websockets refused (HTTP 403): origin 'https://evil.example' is not allowed "
            "(WEBSOCKETS_ALLOWED_ORIGINS)",
        ),
        (
            logging.WARNING,
            "WebSocket handshake to /websockets/logs refused (HTTP 403): Host 'evil.example' is not in ALLOWED_HOSTS",
        ),
    ]
    assert "SECRET-TOKEN" not in caplog.text


async def test_a_refused_path_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    # Hostile review: /websockets%0A<a whole log line>%1B[31m once wrote two lines (console and logs socket).
    caplog.set_level(logging.WARNING, logger="likha_realtime.origins")
    forged = "/websockets%0A2026-12-02 23:59:59,000 CRITICAL django.security: FORGED%1B[31m"
    comm = WebsocketCommunicator(websocket_application(), forged, headers=[(b"origin", b"https://evil.example")])
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output(timeout=FRAME_WAIT) == {"type": "websocket.close"}
    (record,) = [r for r in caplog.records if r.name == "likha_realtime.origins"]
    assert record.getMessage() == (
        "WebSocket handshake to /websockets\\n2026-12-02 23:59:59,000 CRITICAL django.security: FORGED\\x1b[31m "
        "refused (HTTP 403): origin 'https://evil.example' is not allowed (WEBSOCKETS_ALLOWED_ORIGINS)"
    )


async def test_a_long_refused_origin_is_cut_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="likha_realtime.origins")
    with override_settings(ALLOWED_HOSTS=HOSTS):
        assert await handshake({"origin": "https://" + "a" * 5000 + ".example", "host": "erp.example.com"}) == "refused"
    assert max(len(r.getMessage()) for r in caplog.records) < 400


async def test_the_guard_is_for_websockets_only() -> None:
    with pytest.raises(ValueError, match="not 'http'"):
        await guard(None)({"type": "http"}, None, None)


# -- the GraphQL consumer: our list, not strawberry's same-origin check ---------------------------------------


async def test_the_graphql_consumer_itself_applies_the_list_instead_of_strawberrys_check() -> None:
    # Without the router's guard: strawberry refuses every other origin unless told otherwise (localhost against
    # 127.0.0.1 too); the consumer asks the sockets' allow-list instead.
    consumer = GraphQLConsumer.as_asgi(schema=get_schema())
    with override_settings(ALLOWED_HOSTS=HOSTS):
        good = {"origin": "http://localhost:5173", "host": "127.0.0.1:8000"}
        assert await handshake(good, "graphql", app=consumer) == "accepted"
        assert await handshake({"origin": "https://evil.example", "host": "127.0.0.1:8000"}, "graphql", consumer) == (
            "refused"
        )
    with override_settings(ALLOWED_HOSTS=HOSTS), realtime(WEBSOCKETS_ALLOWED_ORIGINS=["https://app.example.com"]):
        assert await handshake({"origin": "https://app.example.com", "host": "127.0.0.1"}, "graphql", consumer) == (
            "accepted"
        )
        assert await handshake(good, "graphql", app=consumer) == "refused"


# -- pong echoes the ping's payload (graphql-transport-ws) --------------------------------------------------------


@pytest.mark.parametrize(
    ("ping", "pong"),
    [
        ({"type": "ping"}, {"type": "pong"}),
        ({"type": "ping", "payload": None}, {"type": "pong"}),
        ({"type": "ping", "payload": {}}, {"type": "pong", "payload": {}}),
        (
            {"type": "ping", "payload": {"sent": 1764150000000, "nested": {"list": [1, "two", None]}}},
            {"type": "pong", "payload": {"sent": 1764150000000, "nested": {"list": [1, "two", None]}}},
        ),
    ],
)
async def test_pong_echoes_the_pings_payload(ping: dict[str, Any], pong: dict[str, Any]) -> None:
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            await comm.send_json_to(ping)
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == pong
            await comm.send_json_to(ping)  # the socket stays open: again
            assert await comm.receive_json_from(timeout=FRAME_WAIT) == pong


async def test_a_ping_before_connection_init_is_answered_too() -> None:
    with realtime(GRAPHQL_AUTH="handshake"):
        comm = communicator()
        assert await comm.connect() == (True, "graphql-transport-ws")
        await comm.send_json_to({"type": "ping", "payload": {"n": 1}})
        assert await comm.receive_json_from(timeout=FRAME_WAIT) == {"type": "pong", "payload": {"n": 1}}
        await comm.disconnect()


@pytest.mark.parametrize("payload", ["text", 1, [1, 2], True])
async def test_a_ping_whose_payload_is_not_an_object_breaks_the_protocol(payload: Any) -> None:
    # graphql-ws validates it so ("an object or nullish or missing") and closes 4400.
    with realtime(GRAPHQL_AUTH="public"):
        async with communicator() as comm:
            await comm.send_json_to({"type": "ping", "payload": payload})
            output = await comm.receive_output(timeout=FRAME_WAIT)
            assert output == {"type": "websocket.close", "code": 4400, "reason": '"ping" payload must be an object'}


# -- the setting --------------------------------------------------------------------------------------------------


def test_the_environment_variable_is_comma_separated_and_normalized() -> None:
    env = {"WEBSOCKETS_ALLOWED_ORIGINS": " https://ERP.example.com:443 , http://localhost:5173,,"}
    assert from_environ(env) == {"WEBSOCKETS_ALLOWED_ORIGINS": ["https://erp.example.com", "http://localhost:5173"]}
    assert from_environ({"WEBSOCKETS_ALLOWED_ORIGINS": "*"}) == {"WEBSOCKETS_ALLOWED_ORIGINS": ["*"]}
    assert from_environ({"WEBSOCKETS_ALLOWED_ORIGINS": "  "}) == {}


@pytest.mark.parametrize(
    "text", ["erp.example.com", "https://erp.example.com/", "https://erp.example.com/app", "ws://erp.example.com", ","]
)
def test_an_invalid_environment_value_names_the_variable_and_the_form(text: str) -> None:
    with pytest.raises(EnvError) as error:
        from_environ({"WEBSOCKETS_ALLOWED_ORIGINS": text})
    assert str(error.value) == (
        f"WEBSOCKETS_ALLOWED_ORIGINS={text.strip()!r} is invalid; allowed: comma-separated origins such as "
        "https://erp.example.com,http://localhost:5173 (scheme://host[:port], http or https, no path), "
        "or * (any origin: unsafe)."
    )


@pytest.mark.parametrize("value", ["https://erp.example.com", ["https://erp.example.com/"], [None], 5])
def test_an_invalid_python_value_is_a_system_check_error(value: Any) -> None:
    with realtime(WEBSOCKETS_ALLOWED_ORIGINS=value):
        messages = [m.msg for m in run_checks() if m.id == "likha_realtime.E001"]
    assert messages == [
        f"LIKHA_REALTIME['WEBSOCKETS_ALLOWED_ORIGINS'] = {value!r} is invalid; allowed: None (the site's own "
        "hosts), or a list of origins such as 'https://erp.example.com' (scheme://host[:port], http or https, no "
        "path) or '*' (any origin: unsafe)."
    ]


def test_the_default_is_the_sites_own_hosts() -> None:
    assert realtime_settings.WEBSOCKETS_ALLOWED_ORIGINS is None
    assert Origins().valid(None) and Origins().valid(("https://a.example", "*")) and Origins().valid([])


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("https://Erp.Example.com", "https://erp.example.com"),
        ("http://erp.example.com:80", "http://erp.example.com"),
        ("https://erp.example.com:80", "https://erp.example.com:80"),
        ("http://[::1]:5173", "http://[::1]:5173"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("null", None),
        ("https://", None),
        ("https://erp.example.com:99999", None),
        ("https://erp.example.com.", None),
        ("https://erp.example.com?x=1", None),
        ("https://a b.example", None),
    ],
)
def test_origins_are_normalized_as_browsers_send_them(text: str, normalized: str | None) -> None:
    assert normalize_origin(text) == normalized


# -- the CORS lists derived from the same rules ----------------------------------------------------------------


def test_cors_defaults_to_the_allowed_hosts_any_port() -> None:
    regexes = cors_origins(None, None, ["erp.example.com", ".example.org", "[::1]"]).regexes
    assert cors_origins(None, None, ["erp.example.com"]) == CorsOrigins(
        False, [], [host_origin_regex("erp.example.com")]
    )
    import re

    def allowed(origin: str) -> bool:
        return any(re.match(pattern, origin) for pattern in regexes)

    for origin in (
        "https://erp.example.com",
        "http://erp.example.com:5173",
        "https://example.org",
        "https://shop.example.org:8443",
        "http://[::1]:3000",
    ):
        assert allowed(origin), origin
    for origin in (
        "https://erp.example.com.evil.example",
        "https://evil.example",
        "https://evilexample.org",
        "https://erp-example.com",
        "ftp://erp.example.com",
        "https://erp.example.com/path",
        "https://x@erp.example.com",
    ):
        assert not allowed(origin), origin


def test_cors_takes_its_own_list_then_the_sockets_list() -> None:
    hosts = ["erp.example.com"]
    assert cors_origins(["https://A.example:443"], ["https://b.example"], hosts) == CorsOrigins(
        False, ["https://a.example"], []
    )
    assert cors_origins(None, ["http://localhost:5173"], hosts) == CorsOrigins(False, ["http://localhost:5173"], [])
    assert cors_origins(None, ["*"], hosts) == CorsOrigins(True, [], [])
    assert cors_origins(["*"], None, hosts) == CorsOrigins(True, [], [])
    assert cors_origins(None, None, ["*"]) == CorsOrigins(True, [], [])
    assert cors_origins([], None, hosts) == CorsOrigins(False, [], [])
    with pytest.raises(ValueError, match=r"'erp\.example\.com' is not an origin"):
        cors_origins(["erp.example.com"], None, hosts)


def test_cors_with_debug_and_no_allowed_hosts_uses_djangos_local_hosts() -> None:
    assert cors_origins(None, None, [], debug=True).regexes == [
        host_origin_regex(host) for host in (".localhost", "127.0.0.1", "[::1]")
    ]
    assert cors_origins(None, None, [], debug=False) == CorsOrigins(False, [], [])


def test_the_cors_urls_are_this_projects_routes_only() -> None:
    pattern = cors_urls_regex()
    assert pattern == r"^/(?:auth/(?:login|refresh|logout)$|items(?:/|$)|server/info$|graphql$)"
    for path in ("/auth/login", "/auth/refresh", "/items/products", "/items/products/5", "/server/info", "/graphql"):
        assert re.match(pattern, path), path
    for path in (
        "/admin/",
        "/authors",
        "/auth/",
        "/auth/password_reset/",
        "/auth/login/x",
        "/items-report",
        "/server/infos",
        "/graphql/x",
        "/api/graphql",
        "/",
    ):
        assert not re.match(pattern, path), path
    tenant = cors_urls_regex("/t/<slug:tenant>/graphql", prefix="/realtime/")
    assert re.match(tenant, "/realtime/t/acme/graphql")
    assert re.match(tenant, "/realtime/auth/login")
    assert not re.match(tenant, "/auth/login")
    assert not re.match(tenant, "/realtime/t/a/b/graphql")
