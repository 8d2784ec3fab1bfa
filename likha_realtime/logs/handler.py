"""``LogStreamHandler``: publishes log records to this process's logs sockets and, over Redis, to every other's.

It never blocks the code that logs: ``emit`` formats, redacts and puts the line in a bounded queue (a full queue
drops the line and counts it); one daemon thread drains the queue, hands the lines to this process's streams and
``group_send``s them (in batches) on its own event loop. When the channel layer fails (Redis unreachable), each
``group_send`` is bounded (``CHANNEL_LAYER_TIMEOUT``) and, for ``CHANNEL_LAYER_RETRY`` seconds after a failure, lines
go to this process's sockets only (counted in ``unpublished``, logged rate-limited, never streamed themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from channels.layers import get_channel_layer

from likha_realtime.conf import realtime_settings
from likha_realtime.faults import FaultLog, call_layer, retry_seconds
from likha_realtime.logs.levels import level_number, wire_level
from likha_realtime.logs.redact import MASK, is_secret_key, redact
from likha_realtime.logs.stream import GROUP, MESSAGE_TYPE, Line, local_streams
from likha_realtime.node import NODE_ID, crosses_processes
from likha_realtime.wire.codec import encode_json

QUEUE_SIZE = 10_000
BATCH_SIZE = 200  # lines per group_send
# Never re-published: our own modules, and whatever the publishing itself logs (channel layer, Redis, the loop).
SKIPPED_LOGGERS = ("likha_realtime.logs", "channels_redis", "redis", "asyncio", "daphne")
_RAW_SKIPPED = frozenset({"args", "msg", "exc_info", "levelno", "levelname", "created", "msecs"})
_STOP = object()
logger = logging.getLogger(__name__)  # under likha_realtime.logs: never streamed
# ``extra=LOCAL_ONLY``: the record goes to the process's other handlers (console, files), never to a logs socket —
# for what no level keeps off the socket (any level can be streamed: LOGS_LEVEL goes down to trace).
LOCAL_ONLY_ATTRIBUTE = "likha_local_only"
LOCAL_ONLY: dict[str, Any] = {LOCAL_ONLY_ATTRIBUTE: True}


def skipped(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in SKIPPED_LOGGERS)


def streamed(record: logging.LogRecord) -> bool:
    """Whether a record may reach a logs socket at all (its level aside)."""
    return not (skipped(record.name) or getattr(record, LOCAL_ONLY_ATTRIBUTE, False))


def _json_safe(value: Any) -> tuple[bool, Any]:
    """``(True, value with strings redacted)`` when ``value`` is JSON-safe, else ``(False, None)``."""
    if value is None or isinstance(value, bool | int):
        return True, value
    if isinstance(value, float):
        return math.isfinite(value), value
    if isinstance(value, str):
        return True, redact(value)
    if isinstance(value, list | tuple):
        items = [_json_safe(item) for item in value]
        return all(ok for ok, _ in items), [item for _, item in items]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        pairs = {key: _json_safe_named(key, item) for key, item in value.items()}
        return all(ok for ok, _ in pairs.values()), {key: item for key, (_, item) in pairs.items()}
    return False, None


def _json_safe_named(name: str, value: Any) -> tuple[bool, Any]:
    """As ``_json_safe``, and the whole value masked when ``name`` names a secret (redact's key rule): an attribute
    or a dict entry is not text, so ``redact`` never sees its key beside its value."""
    ok, safe = _json_safe(value)
    if ok and safe not in (None, "") and is_secret_key(name):
        return True, MASK
    return ok, safe


def record_data(record: logging.LogRecord, style: str, formatter: logging.Formatter) -> dict[str, Any]:
    """The ``data`` of a line: ``pretty`` = level, time (ms), msg; ``raw`` adds every JSON-safe attribute."""
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{formatter.formatException(record.exc_info)}"
    data: dict[str, Any] = {"level": wire_level(record.levelno), "time": int(record.created * 1000)}
    if style == "raw":
        for key, value in vars(record).items():
            if key in _RAW_SKIPPED:
                continue
            ok, safe = _json_safe_named(key, value)
            if ok:
                data[key] = safe
    data["msg"] = redact(message)
    return data


class LogStreamHandler(logging.Handler):
    """Records at or above ``LOGS_LEVEL`` to the logs sockets. ``layer`` defaults to the channel layer."""

    def __init__(
        self,
        layer: Any = None,
        queue_size: int = QUEUE_SIZE,
        node_id: str = NODE_ID,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.node_id = node_id
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.dropped = 0
        self.publish_errors = 0  # group_sends that failed or timed out
        self.unpublished = 0  # lines that reached this process's sockets only (Redis failed)
        self._clock = clock
        self._retry_at: float | None = None  # while Redis fails: no group_send before this time
        # Its lines come from a skipped logger and this handler's own thread: never streamed, so never a loop.
        self.faults = FaultLog(logger, "log stream", counted="line(s) not sent to other processes", clock=clock)
        self._thread: threading.Thread | None = None
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if not streamed(record) or threading.current_thread() is self._thread:
            return
        try:
            level = wire_level(record.levelno)
            if level < level_number(realtime_settings.LOGS_LEVEL):
                return
            line = (
                level,
                encode_json(
                    {
                        "type": "logs",
                        "data": record_data(record, realtime_settings.LOGS_STYLE, self._formatter),
                        "uid": self.node_id,
                    }
                ),
            )
        except Exception:
            self.handleError(record)
            return
        try:
            self.queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            return
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="likha-logs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._publish(loop, batch)
        finally:
            loop.close()

    def _next_batch(self) -> list[Line] | None:
        first = self.queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < BATCH_SIZE:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self.queue.put_nowait(_STOP)  # room: we just took an item
                break
            batch.append(item)
        return batch

    def _publish(self, loop: asyncio.AbstractEventLoop, batch: list[Line]) -> None:
        for stream in local_streams():
            stream.deliver_threadsafe(batch)
        layer = self.layer if self.layer is not None else get_channel_layer()
        if not crosses_processes(layer):
            return
        if self._retry_at is not None and self._clock() < self._retry_at:
            self.unpublished += len(batch)  # Redis failed a moment ago: local sockets only until the next try
            self.faults.count(len(batch))
            return
        message = {"type": MESSAGE_TYPE, "node": self.node_id, "lines": [list(line) for line in batch]}
        try:
            loop.run_until_complete(call_layer(partial(layer.group_send, GROUP, message)))
        except Exception as error:
            self.publish_errors += 1
            self.unpublished += len(batch)
            self._retry_at = self._clock() + retry_seconds()
            self.faults.failed(error, f"; lines go to this process's sockets only, retried every {retry_seconds():g}s")
            self.faults.count(len(batch))
            return
        self._retry_at = None
        self.faults.recovered()

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(_STOP)
        super().close()


_installed: LogStreamHandler | None = None


def install(logger: logging.Logger | None = None, handler: LogStreamHandler | None = None) -> LogStreamHandler:
    """Add the handler to ``logger`` (the root logger by default) once; returns the installed handler."""
    global _installed
    target = logger or logging.getLogger()
    if _installed is not None and _installed in target.handlers:
        return _installed
    _installed = handler or LogStreamHandler()
    target.addHandler(_installed)
    return _installed


def uninstall(logger: logging.Logger | None = None) -> None:
    global _installed
    if _installed is not None:
        (logger or logging.getLogger()).removeHandler(_installed)
        _installed.close()
        _installed = None
