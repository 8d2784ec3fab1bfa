"""Test-only memory probe of a live server process (tests/live/test_churn_live.py); never part of production code.

Python imports ``sitecustomize`` at start-up from the first ``sys.path`` entry that has one: the churn test puts this
directory on the server process's ``PYTHONPATH`` and sets ``LIKHA_PROBE_DIR``. Nothing happens without that variable.

On ``SIGUSR1`` the probe runs on the server's event loop (between two callbacks, as any other callback): a full
``gc.collect()``, then ``<LIKHA_PROBE_DIR>/probe.json`` is written (atomically, by rename) with

- ``rss_kb``: VmRSS from /proc/self/status, read after the collection;
- ``daphne_connections``: entries in daphne's ``Server.connections`` (protocols not yet reaped by its checker);
- ``open_connections``: ``RealtimeSocket.open_connections`` by socket;
- ``tasks``: asyncio tasks on the loop;
- ``types``: live gc-tracked objects of the types named in ``WATCHED`` (our consumers, daphne's and autobahn's
  protocols, channels-redis' per-channel state...), and ``growth``: the types whose count grew most since the
  previous probe;
- ``layer``: sizes of the channel layer's per-channel structures (receive buffer, clean locks);
- ``registrations``: connections registered with our per-process registries (event listeners, logs taps);
- ``tracemalloc`` (only when the process runs with ``PYTHONTRACEMALLOC``): the allocations that grew most since the
  previous probe, grouped by traceback, and the traced total.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections import Counter
from typing import Any

PROBE_DIR = os.environ.get("LIKHA_PROBE_DIR")
TOP = 25

# Types whose instance counts the report always gives (qualified names; absent ones count 0).
WATCHED = (
    "likha_realtime.sockets.rest.RestConsumer",
    "likha_realtime.sockets.graphql.GraphQLConsumer",
    "likha_realtime.sockets.logs.LogsConsumer",
    "likha_realtime.server.ReasonWebSocketProtocol",
    "daphne.http_protocol.WebRequest",
    "daphne.http_protocol.HTTPProtocol",
    "twisted.internet.tcp.Server",
    "asyncio.locks.Lock",
    "asyncio.queues.Queue",
    "_asyncio.Task",
    "_asyncio.Future",
    "asyncio.events.TimerHandle",
    "asyncio.events.Handle",
    "realtime_auth.session.AuthSession",
    "likha_realtime.access.subscriptions.Subscription",
    "likha_realtime.access.principal.Principal",
    "django.db.backends.sqlite3.base.DatabaseWrapper",
    "django.db.backends.postgresql.base.DatabaseWrapper",
    "twisted.python.failure.Failure",
    "builtins.frame",
    "builtins.coroutine",
    "builtins.cell",
    "builtins.dict",
    "builtins.function",
)

_previous_types: Counter[str] = Counter()
_previous_snapshot: Any = None
_server: Any = None


def _name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _daphne_server(objects: list[Any]) -> Any:
    global _server
    if _server is None and "daphne.server" in sys.modules:
        server_class = sys.modules["daphne.server"].Server
        # type(), not isinstance(): isinstance() asks a lazy object's __class__, which would set it up (GEOS...).
        _server = next((o for o in objects if issubclass(type(o), server_class)), None)
    return _server


def _layer_sizes() -> dict[str, int]:
    layers = sys.modules.get("channels.layers")
    if layers is None:
        return {}
    sizes: dict[str, int] = {}
    for alias, layer in getattr(layers.channel_layers, "backends", {}).items():
        for attribute in ("receive_buffer", "receive_cleaners", "_layers", "channels", "groups"):
            value = getattr(layer, attribute, None)
            if value is not None and hasattr(value, "__len__"):
                sizes[f"{alias}.{attribute}"] = len(value)
        locks = getattr(layer, "receive_clean_locks", None)
        if locks is not None:
            sizes[f"{alias}.receive_clean_locks"] = len(locks.locks)
    return sizes


def _registrations() -> dict[str, int]:
    """Our per-process registries of connections: event listeners by collection, logs taps."""
    counts: dict[str, int] = {}
    fanout = sys.modules.get("likha_realtime.events.fanout")
    for dispatcher in fanout._dispatchers.values() if fanout is not None else ():
        for collection, listeners in dispatcher.listeners.items():
            counts[f"listeners.{collection}"] = counts.get(f"listeners.{collection}", 0) + len(listeners)
    stream = sys.modules.get("likha_realtime.logs.stream")
    for each in stream._streams.values() if stream is not None else ():
        counts["log_taps"] = counts.get("log_taps", 0) + len(each.taps)
    return counts


def _tracemalloc_report() -> dict[str, Any] | None:
    global _previous_snapshot
    import tracemalloc

    if not tracemalloc.is_tracing():
        return None
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        )
    )
    report: dict[str, Any] = {"traced_kb": tracemalloc.get_traced_memory()[0] // 1024}
    if _previous_snapshot is not None:
        key = "traceback" if tracemalloc.get_traceback_limit() > 1 else "lineno"
        grown = [s for s in snapshot.compare_to(_previous_snapshot, key) if s.size_diff > 0][:TOP]
        report["grown"] = [
            {"size_diff": s.size_diff, "count_diff": s.count_diff, "traceback": s.traceback.format()[-12:]}
            for s in grown
        ]
    _previous_snapshot = snapshot
    return report


def probe() -> None:
    """Write the report, or the error that prevented it (the test fails with it instead of waiting)."""
    try:
        report = _report()
    except Exception as error:  # reported to the test
        report = {"error": repr(error)}
    path = os.path.join(str(PROBE_DIR), "probe.json")
    with open(path + ".tmp", "w") as file:
        json.dump(report, file, indent=1)
    os.replace(path + ".tmp", path)


def _report() -> dict[str, Any]:
    global _previous_types
    import asyncio

    gc.collect()
    objects = gc.get_objects()
    types = Counter(_name(type(o)) for o in objects)
    growth = {name: count - _previous_types[name] for name, count in types.items()}
    top = sorted((item for item in growth.items() if item[1] > 0), key=lambda item: -item[1])[:TOP]
    _previous_types = types
    server = _daphne_server(objects)
    base = sys.modules.get("likha_realtime.sockets.base")
    report = {
        "rss_kb": _rss_kb(),
        "daphne_connections": len(server.connections) if server is not None and hasattr(server, "connections") else -1,
        "open_connections": dict(base.RealtimeSocket.open_connections) if base is not None else {},
        "tasks": len(asyncio.all_tasks()),
        "types": {name: types[name] for name in WATCHED},
        "growth": dict(top),
        "layer": _layer_sizes(),
        "registrations": _registrations(),
        "tracemalloc": _tracemalloc_report(),
    }
    del objects
    return report


def _on_signal(signum: int, frame: Any) -> None:
    import asyncio

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return
    loop.call_soon_threadsafe(probe)


if PROBE_DIR:
    signal.signal(signal.SIGUSR1, _on_signal)
