"""System checks of the host's deployment for likha_realtime: the channel layer, DEBUG, origins and database
connections (docs/CONFIGURATION.md, "System checks"). The settings' own values are checked in ``apps.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core import checks

from likha_realtime.conf import ANY_ORIGIN, SOCKET_NAMES, realtime_settings, socket_enabled

REDIS_LAYER_EXAMPLE = (
    "CHANNEL_LAYERS = {'default': {'BACKEND': 'likha_realtime.layers.RedisChannelLayer', "
    "'CONFIG': {'hosts': ['redis://127.0.0.1:6379/0']}}}"
)
CANNOT_WORK = "the realtime sockets cannot work."
CHANNEL_LAYER_HINT = (
    f"Configure a channel layer, e.g. {REDIS_LAYER_EXAMPLE} (docs/CONFIGURATION.md, 'Channel layer'), "
    "or turn the sockets off with LIKHA_REALTIME['ENABLED'] = False."
)


def sockets_enabled() -> bool:
    return any(socket_enabled(name) for name in SOCKET_NAMES)


def channel_layer_problem() -> str | None:
    """Why the sockets have no channel layer to use (``None``: they have one). Never raises."""
    configs = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(configs, dict) or DEFAULT_CHANNEL_LAYER not in configs:
        return f"CHANNEL_LAYERS has no {DEFAULT_CHANNEL_LAYER!r} channel layer: {CANNOT_WORK}"
    try:
        layer = get_channel_layer()
    except Exception as exc:  # channels' InvalidChannelLayerError, or the backend's own error on its CONFIG
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"CHANNEL_LAYERS[{DEFAULT_CHANNEL_LAYER!r}] cannot be loaded ({reason}): {CANNOT_WORK}"
    if layer is None:
        return f"CHANNEL_LAYERS[{DEFAULT_CHANNEL_LAYER!r}] gives no channel layer: {CANNOT_WORK}"
    return None


def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E003: no usable channel layer while a socket is enabled (the sockets would be refused, close 4500)."""
    if not sockets_enabled():
        return []
    problem = channel_layer_problem()
    if problem is None:
        return []
    return [checks.Error(problem, hint=CHANNEL_LAYER_HINT, id="likha_realtime.E003")]


def check_single_process_layer(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W002 (deploy): the in-memory layer keeps events, revocations and log lines inside one process."""
    if not sockets_enabled() or channel_layer_problem() is not None:
        return []
    if not isinstance(get_channel_layer(), InMemoryChannelLayer):
        return []
    return [
        checks.Warning(
            f"CHANNEL_LAYERS[{DEFAULT_CHANNEL_LAYER!r}] is the in-memory layer: events, log lines, logouts and "
            "rights changes reach only the sockets of the server process where they happen.",
            hint="Fine for one server process. With several processes or machines use Redis: "
            f"{REDIS_LAYER_EXAMPLE} (docs/CONFIGURATION.md, 'Channel layer').",
            id="likha_realtime.W002",
        )
    ]


def check_upstream_redis_layer(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W006: channels-redis' own layer, which loses a message for any socket of the process (an event for all of
    them) when a closing socket's receive is cancelled half-way through its read (``likha_realtime.layers``)."""
    if not sockets_enabled() or channel_layer_problem() is not None:
        return []
    from likha_realtime.layers import RedisChannelLayer, UpstreamRedisChannelLayer

    layer = get_channel_layer()
    if not isinstance(layer, UpstreamRedisChannelLayer) or isinstance(layer, RedisChannelLayer):
        return []
    return [
        checks.Warning(
            f"CHANNEL_LAYERS[{DEFAULT_CHANNEL_LAYER!r}] is channels-redis' own RedisChannelLayer: when a socket "
            "closes while its receive is reading Redis for the whole process, the message it has just read is lost, "
            "whichever socket it was for (an event for every subscriber of the process, or a rights change).",
            hint="Use 'BACKEND': 'likha_realtime.layers.RedisChannelLayer' (the same CONFIG; docs/CONFIGURATION.md, "
            "'Channel layer').",
            id="likha_realtime.W006",
        )
    ]


def check_debug(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W003 (deploy): DEBUG on, which long-lived sockets make costlier than plain requests."""
    if not settings.DEBUG:
        return []
    return [
        checks.Warning(
            "DEBUG is on: error pages show settings and source, and Django keeps up to 9000 SQL queries per "
            "database connection in memory, which sockets (unlike requests) never reset.",
            hint="Set DEBUG = False in deployment (env DEBUG=false in this project).",
            id="likha_realtime.W003",
        )
    ]


def check_any_origin(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W004 (deploy): every web page may open the sockets — ``"*"`` in WEBSOCKETS_ALLOWED_ORIGINS, or the list unset
    with ``"*"`` in ALLOWED_HOSTS (whose hosts are then the default origins)."""
    if not sockets_enabled():
        return []
    configured = realtime_settings.WEBSOCKETS_ALLOWED_ORIGINS
    if configured is not None and ANY_ORIGIN in configured:
        cause = f"LIKHA_REALTIME['WEBSOCKETS_ALLOWED_ORIGINS'] holds {ANY_ORIGIN!r}"
    elif configured is None and "*" in settings.ALLOWED_HOSTS:
        cause = "WEBSOCKETS_ALLOWED_ORIGINS is unset and ALLOWED_HOSTS holds '*'"
    else:
        return []
    return [
        checks.Warning(
            f"{cause}: a page of any web site may open the realtime sockets from its visitors' browsers.",
            hint="List the front ends' origins: LIKHA_REALTIME['WEBSOCKETS_ALLOWED_ORIGINS'] = "
            "['https://app.example.com'] (env WEBSOCKETS_ALLOWED_ORIGINS; docs/CONFIGURATION.md, "
            "'Browsers: origins and CORS').",
            id="likha_realtime.W004",
        )
    ]


POOL_HINT = (
    "Set CONN_MAX_AGE = 0 and use Django's psycopg pool, sized so that server processes x max_size stays under "
    "PostgreSQL's max_connections: 'OPTIONS': {{'pool': {{'min_size': 2, 'max_size': 20}}}} in DATABASES[{alias!r}] "
    "(needs psycopg 3 and psycopg-pool), or put PgBouncer in front with CONN_MAX_AGE = 0 "
    "(docs/DEPLOYMENT.md, 'PostgreSQL')."
)


def persistent_connection_warnings(databases: Mapping[str, Any]) -> list[checks.CheckMessage]:
    """W005 for each PostgreSQL alias of ``databases`` (a ``DATABASES`` value) that keeps connections without a
    pool."""
    found: list[checks.CheckMessage] = []
    for alias, config in databases.items():
        if not isinstance(config, Mapping):
            continue
        engine = str(config.get("ENGINE", ""))
        options = config.get("OPTIONS") or {}
        max_age = config.get("CONN_MAX_AGE", 0)
        if "postgresql" not in engine and "postgis" not in engine:
            continue
        if max_age == 0 or (isinstance(options, Mapping) and options.get("pool")):
            continue  # a pool with CONN_MAX_AGE != 0 is refused by Django itself at the first connection
        kept = "for ever" if max_age is None else f"for {max_age} s"
        found.append(
            checks.Warning(
                f"DATABASES[{alias!r}] keeps PostgreSQL connections open {kept} (CONN_MAX_AGE={max_age!r}) without a "
                "pool: under ASGI each request and each socket's database call runs in a thread of its own, and each "
                "thread keeps its own connection, so a server process's connections grow with the load until "
                "PostgreSQL refuses new ones ('too many clients already') and writes fail.",
                hint=POOL_HINT.format(alias=alias),
                id="likha_realtime.W005",
            )
        )
    return found


def check_database_connections(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W005 (deploy): persistent PostgreSQL connections without a pool (unbounded under ASGI)."""
    databases = getattr(settings, "DATABASES", None)
    return persistent_connection_warnings(databases) if isinstance(databases, Mapping) else []


def register() -> None:
    """Called from ``LikhaRealtimeConfig.ready()``; deploy checks run with ``check --deploy`` and at server start
    (``likha_realtime.server``)."""
    checks.register(check_channel_layer)
    checks.register(check_single_process_layer, deploy=True)
    checks.register(check_upstream_redis_layer)
    checks.register(check_debug, checks.Tags.security, deploy=True)
    checks.register(check_any_origin, checks.Tags.security, deploy=True)
    checks.register(check_database_connections, deploy=True)
