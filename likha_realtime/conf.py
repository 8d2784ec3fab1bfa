"""``realtime_settings``: the likha_realtime keys of the ``LIKHA_REALTIME`` setting, their kinds and env variables."""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.http.request import split_domain_port

from realtime_auth.conf import (
    AUTH_MODES,
    SETTING_NAME,
    AppSettings,
    Choice,
    Count,
    Dict,
    Flag,
    Kind,
    Seconds,
    UrlPath,
    auth_settings,
    user_settings,
)

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
LOG_STYLES = ("pretty", "raw")
INTROSPECTION_MODES = ("admin", "all", "off")
ANY_ORIGIN = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str | None:
    """``text`` as a browser sends the origin (``https://erp.example.com``, ``http://localhost:5173``): lowercase,
    without the scheme's default port; ``None`` when it is not an http(s) origin (a path, ``null``, a user...)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    domain, _ = split_domain_port(parts.netloc)
    if not domain or text.strip().endswith((".", ":")):
        return None
    return f"{scheme}://{domain}" + ("" if port is None or port == DEFAULT_PORTS[scheme] else f":{port}")


@dataclass(frozen=True)
class Origins(Kind):
    """``None`` (the site's own hosts), or a list of origins and/or ``"*"``; the environment: comma-separated."""

    @property
    def allowed(self) -> str:
        return (
            "None (the site's own hosts), or a list of origins such as 'https://erp.example.com' "
            "(scheme://host[:port], http or https, no path) or '*' (any origin: unsafe)"
        )

    @property
    def allowed_text(self) -> str:
        return (
            "comma-separated origins such as https://erp.example.com,http://localhost:5173 "
            "(scheme://host[:port], http or https, no path), or * (any origin: unsafe)"
        )

    def valid(self, value: Any) -> bool:
        if value is None:
            return True
        return isinstance(value, list | tuple) and all(
            isinstance(item, str) and (item == ANY_ORIGIN or normalize_origin(item) is not None) for item in value
        )

    def parse(self, text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items or not self.valid(items):
            raise ValueError(text)
        return [item if item == ANY_ORIGIN else str(normalize_origin(item)) for item in items]


@dataclass(frozen=True)
class Networks(Kind):
    """A list of IP networks or addresses (``10.0.0.0/8``, ``127.0.0.1``, ``::1``); the environment: comma-separated."""

    @property
    def allowed(self) -> str:
        return "a list of IP networks or addresses such as '10.0.0.0/8', '127.0.0.1' or '::1'"

    @property
    def allowed_text(self) -> str:
        return "comma-separated IP networks or addresses such as 10.0.0.0/8,127.0.0.1,::1"

    def valid(self, value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        try:
            [ipaddress.ip_network(item, strict=False) for item in value]
        except (TypeError, ValueError):
            return False
        return True

    def parse(self, text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not self.valid(items):
            raise ValueError(text)
        return items


@dataclass(frozen=True)
class Secrets(Kind):
    """A list of secret strings of at least 16 characters; the environment: comma-separated. Never shown."""

    secret = True

    @property
    def allowed(self) -> str:
        return "a list of strings of at least 16 characters each"

    def valid(self, value: Any) -> bool:
        return isinstance(value, list | tuple) and all(isinstance(item, str) and len(item) >= 16 for item in value)

    def parse(self, text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not self.valid(items):
            raise ValueError("[REDACTED]")
        return items


DEFAULTS: dict[str, Any] = {
    # All three sockets on/off.
    "ENABLED": True,
    # The REST socket (PROTOCOL §3-§6) on/off; off: not routed, /server/info says false.
    "REST_ENABLED": True,
    # Its URL path.
    "REST_PATH": "/websockets",
    # Its auth mode: public, handshake or strict (PROTOCOL §3).
    "REST_AUTH": "handshake",
    # Seconds the handshake may take, and the re-auth window after a token expires.
    "REST_AUTH_TIMEOUT": 10,
    # Open REST sockets per server process (None: unlimited); extra ones get REQUESTS_EXCEEDED and close 4429.
    "REST_CONN_LIMIT": None,
    # The GraphQL socket (PROTOCOL §8) on/off.
    "GRAPHQL_ENABLED": True,
    # Its URL path.
    "GRAPHQL_PATH": "/graphql",
    # Its auth mode: public, handshake or strict.
    "GRAPHQL_AUTH": "handshake",
    # Seconds until connection_init must have authenticated, and the re-auth window after expiry.
    "GRAPHQL_AUTH_TIMEOUT": 10,
    # Open GraphQL sockets per server process (None: unlimited).
    "GRAPHQL_CONN_LIMIT": None,
    # Who may introspect the GraphQL schema (socket and HTTP): admin (superusers), all (the public role too) or off.
    "GRAPHQL_INTROSPECTION": "admin",
    # GET on the GraphQL path serves strawberry's GraphiQL page, whose scripts come from a public CDN (unpkg.com).
    "GRAPHQL_IDE": False,
    # The logs socket (PROTOCOL §7, admins only) on/off; off also leaves the log handler uninstalled.
    "LOGS_ENABLED": True,
    # Its URL path.
    "LOGS_PATH": "/websockets/logs",
    # Its auth mode: public, handshake or strict (non-admins are refused in every mode).
    "LOGS_AUTH": "handshake",
    # Seconds the handshake may take, and the re-auth window after expiry.
    "LOGS_AUTH_TIMEOUT": 10,
    # Open logs sockets per server process (None: unlimited).
    "LOGS_CONN_LIMIT": None,
    # Server {"type":"ping"} every period on the REST and logs sockets.
    "HEARTBEAT_ENABLED": True,
    # Seconds between pings; a client silent for a whole period after a ping is closed 4408.
    "HEARTBEAT_PERIOD": 30,
    # Larger client frames get INVALID_PAYLOAD, then close 4413.
    "MESSAGE_MAX_BYTES": 1024 * 1024,
    # Messages a connection may send in a burst, refilled over MESSAGE_RATE_DURATION (None: unlimited).
    "MESSAGE_RATE_POINTS": 100,
    # The same for all of one authenticated user's connections on this server process (None: unlimited); above the
    # connection's, since one user may open many sockets that all subscribe at once.
    "USER_MESSAGE_RATE_POINTS": 1000,
    # Seconds in which the rate buckets refill completely; over them: REQUESTS_EXCEEDED with the wait, not run.
    "MESSAGE_RATE_DURATION": 1,
    # Open sockets of one authenticated user per server process, the three sockets together (None: unlimited).
    # Generous: one service account may hold many sockets (a connect storm of 300, the 1,000-subscriber benchmark).
    "USER_CONN_LIMIT": 1000,
    # Subscriptions one connection may hold (REST subscriptions, GraphQL subscription operations).
    "SUBSCRIPTIONS_MAX": 100,
    # Keys in one items message's "ids" (also rows of a create array and keys of an HTTP /items batch).
    "ITEMS_MAX_IDS": 1000,
    # GraphQL documents (HTTP and socket): selection depth, aliases, tokens.
    "GRAPHQL_MAX_DEPTH": 10,
    "GRAPHQL_MAX_ALIASES": 30,
    "GRAPHQL_MAX_TOKENS": 5000,
    # Bytes a socket may have waiting for a client that does not read (beyond the message that filled its
    # buffer); more closes it 4429 (likha_realtime.backpressure; enforced by likha_realtime.server, not plain daphne).
    "SEND_BUFFER_MAX_BYTES": 4 * 1024 * 1024,
    # likha-daphne only: objects allocated (net) between two collections of the garbage collector's youngest
    # generation (Python's default: 700). Higher: far fewer objects survive into the oldest generation, whose full
    # pass stops the process for ~80 µs per open connection (likha_realtime.server.tune_gc); young garbage, and closed
    # sockets' reference cycles, wait longer (more memory). The default is Python's own: raise it knowingly.
    "GC_YOUNG_THRESHOLD": 700,
    # Lowest level the log handler publishes to the logs socket.
    "LOGS_LEVEL": "info",
    # pretty (level, time, msg) or raw (every JSON-safe record attribute).
    "LOGS_STYLE": "pretty",
    # Rows when a query gives no limit.
    "QUERY_LIMIT_DEFAULT": 100,
    # Largest limit a query may ask for.
    "QUERY_LIMIT_MAX": 1000,
    # Event deliveries (one per subscription and event, or an event not yet matched to a connection) waiting in a
    # server process; over it, the connection with the most waiting loses them and its subscriptions get a resync.
    "FANOUT_BACKLOG": 100_000,
    # Connections' turns served at once by a server process's fan-out (each its own connection's, in order): while
    # one turn waits for its re-read, others send or queue theirs, so the database thread never idles between them.
    "FANOUT_CONCURRENCY": 8,
    # Browser origins that may open the three sockets (docs/CONFIGURATION.md): None = the site's own hosts (same
    # origin, or a host in ALLOWED_HOSTS, any port); else a list of origins ("https://erp.example.com"), "*" = any.
    # Others are refused at the handshake with HTTP 403; handshakes without an Origin header (not a browser) pass.
    "WEBSOCKETS_ALLOWED_ORIGINS": None,
    # Collections exposed from settings: name -> "app.Model" or {"model", "row_rule", "readable_fields", "fields"}
    # (dotted paths to callables). Code can also call likha_realtime.access.collections.register().
    "COLLECTIONS": {},
    # GET /metrics (Prometheus text format) on/off.
    "METRICS_ENABLED": True,
    # Who may read /metrics besides an active superuser's access token: these bearer tokens (a scraper's
    # ``Authorization: Bearer <token>``; each at least 16 characters) ...
    "METRICS_TOKENS": [],
    # ... and clients whose address (the connection's peer, REMOTE_ADDR) is in these networks. Empty: none.
    "METRICS_ALLOWED_ADDRESSES": [],
    # /readyz: seconds each check (database, channel layer) may take before it counts as failed ("timeout").
    "HEALTH_TIMEOUT": 2,
    # /readyz: seconds one check's result answers every probe (at most one check per this, whatever the probe rate).
    "HEALTH_MAX_AGE": 1,
    # Seconds one channel-layer call (an event's publish, a group join) may take before it counts as failed.
    "CHANNEL_LAYER_TIMEOUT": 2,
    # Seconds between attempts to reach the channel layer again after a failure (publishing, receiving, joining).
    "CHANNEL_LAYER_RETRY": 1,
    # Events kept (in order) while publishing is paused after a failure; more are dropped, counted, and resynced.
    "CHANNEL_LAYER_PUBLISH_BUFFER": 1000,
    # Seconds between two log lines about one ongoing channel-layer fault (each with a count of what happened).
    "CHANNEL_LAYER_FAULT_LOG_INTERVAL": 30,
}

AUTH_MODE = Choice(AUTH_MODES)
AUTH_TIMEOUT = Seconds(minimum=0.1)  # below it a handshake cannot finish over a real network
CONN_LIMIT = Count(minimum=1, unlimited=True)

KINDS: dict[str, Kind] = {
    "ENABLED": Flag(),
    "REST_ENABLED": Flag(),
    "REST_PATH": UrlPath(),
    "REST_AUTH": AUTH_MODE,
    "REST_AUTH_TIMEOUT": AUTH_TIMEOUT,
    "REST_CONN_LIMIT": CONN_LIMIT,
    "GRAPHQL_ENABLED": Flag(),
    "GRAPHQL_PATH": UrlPath(),
    "GRAPHQL_AUTH": AUTH_MODE,
    "GRAPHQL_AUTH_TIMEOUT": AUTH_TIMEOUT,
    "GRAPHQL_CONN_LIMIT": CONN_LIMIT,
    "GRAPHQL_INTROSPECTION": Choice(INTROSPECTION_MODES),
    "GRAPHQL_IDE": Flag(),
    "LOGS_ENABLED": Flag(),
    "LOGS_PATH": UrlPath(),
    "LOGS_AUTH": AUTH_MODE,
    "LOGS_AUTH_TIMEOUT": AUTH_TIMEOUT,
    "LOGS_CONN_LIMIT": CONN_LIMIT,
    "HEARTBEAT_ENABLED": Flag(),
    "HEARTBEAT_PERIOD": Seconds(minimum=1),
    "MESSAGE_MAX_BYTES": Count(minimum=1024),
    "MESSAGE_RATE_POINTS": Count(minimum=1, unlimited=True),
    "USER_MESSAGE_RATE_POINTS": Count(minimum=1, unlimited=True),
    "MESSAGE_RATE_DURATION": Seconds(minimum=0.001),
    "USER_CONN_LIMIT": CONN_LIMIT,
    "SUBSCRIPTIONS_MAX": Count(minimum=1),
    "ITEMS_MAX_IDS": Count(minimum=1),
    "GRAPHQL_MAX_DEPTH": Count(minimum=1),
    "GRAPHQL_MAX_ALIASES": Count(minimum=0),
    "GRAPHQL_MAX_TOKENS": Count(minimum=1),
    "SEND_BUFFER_MAX_BYTES": Count(minimum=64 * 1024),
    "GC_YOUNG_THRESHOLD": Count(minimum=100),
    "LOGS_LEVEL": Choice(LOG_LEVELS),
    "LOGS_STYLE": Choice(LOG_STYLES),
    "QUERY_LIMIT_DEFAULT": Count(minimum=1),
    "QUERY_LIMIT_MAX": Count(minimum=1),
    "FANOUT_BACKLOG": Count(minimum=100),
    "FANOUT_CONCURRENCY": Count(minimum=1),
    "WEBSOCKETS_ALLOWED_ORIGINS": Origins(),
    "COLLECTIONS": Dict(of="collection name -> model"),
    "METRICS_ENABLED": Flag(),
    "METRICS_TOKENS": Secrets(),
    "METRICS_ALLOWED_ADDRESSES": Networks(),
    "HEALTH_TIMEOUT": Seconds(minimum=0.01),
    "HEALTH_MAX_AGE": Seconds(minimum=0),
    "CHANNEL_LAYER_TIMEOUT": Seconds(minimum=0.01),
    "CHANNEL_LAYER_RETRY": Seconds(minimum=0.01),
    "CHANNEL_LAYER_PUBLISH_BUFFER": Count(minimum=0),
    "CHANNEL_LAYER_FAULT_LOG_INTERVAL": Seconds(minimum=0),
}

# Environment variable -> setting key (docs/CONFIGURATION.md, PROTOCOL §1); ``from_environ`` reads them.
ENVIRONMENT: dict[str, str] = {
    "WEBSOCKETS_ENABLED": "ENABLED",
    "WEBSOCKETS_REST_ENABLED": "REST_ENABLED",
    "WEBSOCKETS_REST_PATH": "REST_PATH",
    "WEBSOCKETS_REST_AUTH": "REST_AUTH",
    "WEBSOCKETS_REST_AUTH_TIMEOUT": "REST_AUTH_TIMEOUT",
    "WEBSOCKETS_REST_CONN_LIMIT": "REST_CONN_LIMIT",
    "WEBSOCKETS_GRAPHQL_ENABLED": "GRAPHQL_ENABLED",
    "WEBSOCKETS_GRAPHQL_PATH": "GRAPHQL_PATH",
    "WEBSOCKETS_GRAPHQL_AUTH": "GRAPHQL_AUTH",
    "WEBSOCKETS_GRAPHQL_AUTH_TIMEOUT": "GRAPHQL_AUTH_TIMEOUT",
    "WEBSOCKETS_GRAPHQL_CONN_LIMIT": "GRAPHQL_CONN_LIMIT",
    "GRAPHQL_INTROSPECTION": "GRAPHQL_INTROSPECTION",  # not only the socket's: HTTP /graphql too
    "GRAPHQL_IDE": "GRAPHQL_IDE",
    "WEBSOCKETS_LOGS_ENABLED": "LOGS_ENABLED",
    "WEBSOCKETS_LOGS_PATH": "LOGS_PATH",
    "WEBSOCKETS_LOGS_AUTH": "LOGS_AUTH",
    "WEBSOCKETS_LOGS_AUTH_TIMEOUT": "LOGS_AUTH_TIMEOUT",
    "WEBSOCKETS_LOGS_CONN_LIMIT": "LOGS_CONN_LIMIT",
    "WEBSOCKETS_HEARTBEAT_ENABLED": "HEARTBEAT_ENABLED",
    "WEBSOCKETS_HEARTBEAT_PERIOD": "HEARTBEAT_PERIOD",
    "WEBSOCKETS_MESSAGE_MAX_BYTES": "MESSAGE_MAX_BYTES",
    "WEBSOCKETS_MESSAGE_RATE_POINTS": "MESSAGE_RATE_POINTS",
    "WEBSOCKETS_USER_MESSAGE_RATE_POINTS": "USER_MESSAGE_RATE_POINTS",
    "WEBSOCKETS_MESSAGE_RATE_DURATION": "MESSAGE_RATE_DURATION",
    "WEBSOCKETS_USER_CONN_LIMIT": "USER_CONN_LIMIT",
    "WEBSOCKETS_SUBSCRIPTIONS_MAX": "SUBSCRIPTIONS_MAX",
    "ITEMS_MAX_IDS": "ITEMS_MAX_IDS",
    "GRAPHQL_MAX_DEPTH": "GRAPHQL_MAX_DEPTH",
    "GRAPHQL_MAX_ALIASES": "GRAPHQL_MAX_ALIASES",
    "GRAPHQL_MAX_TOKENS": "GRAPHQL_MAX_TOKENS",
    "WEBSOCKETS_SEND_BUFFER_MAX_BYTES": "SEND_BUFFER_MAX_BYTES",
    "WEBSOCKETS_GC_YOUNG_THRESHOLD": "GC_YOUNG_THRESHOLD",
    "WEBSOCKETS_LOGS_LEVEL": "LOGS_LEVEL",
    "WEBSOCKETS_LOGS_STYLE": "LOGS_STYLE",
    "QUERY_LIMIT_DEFAULT": "QUERY_LIMIT_DEFAULT",
    "QUERY_LIMIT_MAX": "QUERY_LIMIT_MAX",
    "WEBSOCKETS_FANOUT_BACKLOG": "FANOUT_BACKLOG",
    "WEBSOCKETS_FANOUT_CONCURRENCY": "FANOUT_CONCURRENCY",
    "WEBSOCKETS_ALLOWED_ORIGINS": "WEBSOCKETS_ALLOWED_ORIGINS",
    "METRICS_ENABLED": "METRICS_ENABLED",
    "METRICS_TOKENS": "METRICS_TOKENS",
    "METRICS_ALLOWED_ADDRESSES": "METRICS_ALLOWED_ADDRESSES",
    "HEALTH_TIMEOUT": "HEALTH_TIMEOUT",
    "HEALTH_MAX_AGE": "HEALTH_MAX_AGE",
    "CHANNEL_LAYER_TIMEOUT": "CHANNEL_LAYER_TIMEOUT",
    "CHANNEL_LAYER_RETRY": "CHANNEL_LAYER_RETRY",
    "CHANNEL_LAYER_PUBLISH_BUFFER": "CHANNEL_LAYER_PUBLISH_BUFFER",
    "CHANNEL_LAYER_FAULT_LOG_INTERVAL": "CHANNEL_LAYER_FAULT_LOG_INTERVAL",
}

realtime_settings = AppSettings(DEFAULTS, KINDS, ENVIRONMENT)


class SocketKeys(NamedTuple):
    """The setting keys of one socket."""

    enabled: str
    path: str
    auth: str
    auth_timeout: str
    conn_limit: str


SOCKET_KEYS: dict[str, SocketKeys] = {
    "rest": SocketKeys("REST_ENABLED", "REST_PATH", "REST_AUTH", "REST_AUTH_TIMEOUT", "REST_CONN_LIMIT"),
    "graphql": SocketKeys(
        "GRAPHQL_ENABLED", "GRAPHQL_PATH", "GRAPHQL_AUTH", "GRAPHQL_AUTH_TIMEOUT", "GRAPHQL_CONN_LIMIT"
    ),
    "logs": SocketKeys("LOGS_ENABLED", "LOGS_PATH", "LOGS_AUTH", "LOGS_AUTH_TIMEOUT", "LOGS_CONN_LIMIT"),
}
SOCKET_NAMES = tuple(SOCKET_KEYS)


def socket_enabled(socket: str) -> bool:
    return bool(realtime_settings.ENABLED and getattr(realtime_settings, SOCKET_KEYS[socket].enabled))


def socket_path(socket: str) -> str:
    return str(getattr(realtime_settings, SOCKET_KEYS[socket].path))


def socket_conn_limit(socket: str) -> int | None:
    limit: int | None = getattr(realtime_settings, SOCKET_KEYS[socket].conn_limit)
    return limit


def socket_auth(socket: str) -> tuple[str, float]:
    """The auth mode and timeout (seconds) configured for one socket."""
    keys = SOCKET_KEYS[socket]
    return str(getattr(realtime_settings, keys.auth)), float(getattr(realtime_settings, keys.auth_timeout))


def from_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``LIKHA_REALTIME`` value: the keys of both apps whose environment variables are set, parsed.

    Unset variables leave their keys out, so ``DEFAULTS`` stay the one source of defaults. An invalid value raises
    ``realtime_auth.conf.EnvError`` (``ImproperlyConfigured``) naming the variable and the allowed values.
    """
    return {**auth_settings.from_environ(environ), **realtime_settings.from_environ(environ)}


def unknown_keys() -> list[tuple[str, str | None]]:
    """Keys of ``LIKHA_REALTIME`` that neither app has, each with the closest known key (a likely typo) or None."""
    known = [*auth_settings.defaults, *realtime_settings.defaults]
    unknown = [key for key in user_settings() if key not in known]
    return [(key, next(iter(difflib.get_close_matches(str(key), known, n=1)), None)) for key in unknown]


def consistency_errors() -> list[str]:
    """Values each allowed by its kind that do not fit together (checked once every value is valid)."""
    if realtime_settings.errors():
        return []
    problems = []
    if realtime_settings.QUERY_LIMIT_DEFAULT > realtime_settings.QUERY_LIMIT_MAX:
        problems.append(
            f"{SETTING_NAME}['QUERY_LIMIT_DEFAULT'] = {realtime_settings.QUERY_LIMIT_DEFAULT!r} is above "
            f"{SETTING_NAME}['QUERY_LIMIT_MAX'] = {realtime_settings.QUERY_LIMIT_MAX!r}."
        )
    paths: dict[str, str] = {}
    for socket, keys in SOCKET_KEYS.items():
        if not socket_enabled(socket):
            continue
        path = socket_path(socket)
        if path in paths:
            problems.append(
                f"{SETTING_NAME}[{keys.path!r}] = {path!r} is also the path of the {paths[path]} socket: "
                "only one of them would be reachable."
            )
        paths.setdefault(path, socket)
    return problems
