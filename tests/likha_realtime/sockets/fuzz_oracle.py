"""The oracle of the socket fuzz tests: what the three sockets may answer to any frame (PROTOCOL §3–§8).

Every reply must be a documented frame (a normal reply or the §4 error envelope with a documented code, ``INTERNAL``
excluded: it means an unexpected exception) and every close a documented close code; nothing the server logs may be
an ERROR record or carry a traceback; and after each frame the socket still answers a ping, unless it closed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from channels.testing import WebsocketCommunicator

from realtime_auth.wire import CloseCode, ErrorCode, valid_uid
from tests.fuzz_frames import Frame

FRAME_WAIT = 15  # seconds a reply may take on a loaded 2-core machine: a bound for a failing test, not a pace

CONTEXTS = {"auth", "server", "items", "subscribe", "unsubscribe", "logs"}
CODES = {str(code) for code in ErrorCode} - {"INTERNAL"}
JSON_CLOSES = {int(code) for code in CloseCode} - {1000}
# graphql-transport-ws closes (strawberry's and ours): bad message, unauthorized subscribe, rejected credentials,
# init timeout, duplicate operation id, too large, a second connection_init.
GRAPHQL_CLOSES = {4400, 4401, 4403, 4408, 4409, 4413, 4429}
GRAPHQL_CLOSE_REASONS = {4401: "Unauthorized", 4403: "Forbidden", 4413: "Message Too Large"}


class Records(logging.Handler):
    """Every record at WARNING or above, and any record carrying a traceback, from every logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def problems(self) -> list[str]:
        return [f"{r.levelname} {r.name}: {r.getMessage()} (traceback: {bool(r.exc_info)})" for r in self.records]


@contextmanager
def recorded() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass
class Exchange:
    """What one frame got: the frames before the probe's pong, and the close when the server closed instead."""

    frames: list[Any] = field(default_factory=list)
    close: tuple[int, str | None] | None = None


async def send_frame(comm: WebsocketCommunicator, frame: Frame) -> None:
    if frame.text is not None:
        await comm.send_input({"type": "websocket.receive", "text": frame.text})
    else:
        await comm.send_input({"type": "websocket.receive", "bytes": frame.data})


async def probe(comm: WebsocketCommunicator, ping: dict[str, Any], is_pong: Any) -> Exchange:
    """Send ``ping``; every output until its pong (or a close) — a dead socket fails here with a timeout."""
    exchange = Exchange()
    await comm.send_input({"type": "websocket.receive", "text": json.dumps(ping)})
    while True:
        output = await comm.receive_output(timeout=FRAME_WAIT)
        if output["type"] == "websocket.close":
            exchange.close = (output.get("code", 1000), output.get("reason"))
            return exchange
        assert output["type"] == "websocket.send" and "text" in output, output
        frame = json.loads(output["text"])
        if is_pong(frame):
            return exchange
        exchange.frames.append(frame)


# -- the JSON sockets (REST, logs) ---------------------------------------------------------------------------------


def check_json_frame(frame: Any, sent: Frame) -> None:
    """A documented frame of the REST or logs socket (§3–§7), keys in the documented order."""
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    keys = list(frame)
    if "uid" in frame:
        assert keys[-1] == "uid", frame
    if frame.get("status") == "error":
        assert keys[:3] == ["type", "status", "error"] and len(keys) <= 4, frame
        assert frame["type"] in CONTEXTS, frame
        error = frame["error"]
        assert list(error) == ["code", "message"] and error["code"] in CODES, frame
        assert isinstance(error["message"], str) and error["message"], frame
        message = sent.message
        if isinstance(message, dict) and "uid" in frame and valid_uid(message.get("uid")):
            assert frame["uid"] == message["uid"] or frame["uid"] == str(message["uid"]), (frame, message)
        return
    kind = frame["type"]
    if kind == "pong":
        assert set(frame) <= {"type", "uid"}, frame
    elif kind == "auth":
        assert frame["status"] == "ok" and set(frame) <= {"type", "status", "refresh_token", "uid"}, frame
    elif kind == "subscription":
        assert frame["event"] in {"init", "create", "update", "delete", "unsubscribe", "resync"}, frame
        assert set(frame) <= {"type", "event", "data", "meta", "uid"}, frame
    elif kind == "items":
        assert keys[:2] == ["type", "data"] and set(frame) <= {"type", "data", "meta", "uid"}, frame
    elif kind == "logs":
        assert frame.get("event") in {"subscribe", "unsubscribe"} or "data" in frame, frame
    else:
        raise AssertionError(f"undocumented frame {frame}")


def check_json_exchange(exchange: Exchange, sent: Frame) -> None:
    for frame in exchange.frames:
        check_json_frame(frame, sent)
    if exchange.close is not None:
        code, reason = exchange.close
        assert code in JSON_CLOSES, exchange.close
        assert reason == CloseCode(code).reason, exchange.close
        # a close with a cause comes after the error frame that explains it (§4)
        assert exchange.frames and exchange.frames[-1].get("status") == "error", exchange


# -- the GraphQL socket ------------------------------------------------------------------------------------------


def check_graphql_frame(frame: Any) -> None:
    """A graphql-transport-ws server message (§8): ack, pong, ping, or an operation's next, error or complete."""
    assert isinstance(frame, dict), frame
    kind = frame.get("type")
    if kind in {"connection_ack", "pong", "ping"}:
        assert set(frame) <= {"type", "payload"}, frame
        return
    assert kind in {"next", "error", "complete"} and isinstance(frame.get("id"), str), frame
    if kind == "next":
        payload = frame["payload"]
        assert isinstance(payload, dict) and set(payload) <= {"data", "errors", "extensions"}, frame
    elif kind == "error":
        assert isinstance(frame["payload"], list) and frame["payload"], frame
        for error in frame["payload"]:
            assert isinstance(error.get("message"), str), frame
    for error in frame.get("payload", {}).get("errors", []) if kind == "next" else ():
        assert isinstance(error.get("message"), str), frame


def check_graphql_exchange(exchange: Exchange) -> None:
    for frame in exchange.frames:
        check_graphql_frame(frame)
    if exchange.close is not None:
        code, reason = exchange.close
        assert code in GRAPHQL_CLOSES, exchange.close
        assert isinstance(reason, str) and reason, exchange.close
        if code in GRAPHQL_CLOSE_REASONS:
            assert reason == GRAPHQL_CLOSE_REASONS[code], exchange.close
