"""The log handler: level mapping and filtering, styles, redaction, no recursion, never blocking the logger."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from django.test import override_settings

from erp_demo.models import User
from likha_realtime.apps import install_log_handler
from likha_realtime.logs import handler as handler_module
from likha_realtime.logs.handler import LOCAL_ONLY, LogStreamHandler
from likha_realtime.logs.levels import level_number, wire_level
from realtime_auth import tokens
from tests.likha_realtime.logs.support import RecordingLayer, handler_logger


def realtime(**values: Any) -> override_settings:
    from django.conf import settings

    return override_settings(LIKHA_REALTIME={**settings.LIKHA_REALTIME, **values})


@pytest.fixture
def layer() -> RecordingLayer:
    return RecordingLayer()


@pytest.fixture
def handler(layer: RecordingLayer) -> Any:
    made = LogStreamHandler(layer=layer, node_id="node-a")
    yield made
    made.close()


@pytest.mark.parametrize(
    ("python_level", "wire"),
    [(5, 10), (logging.DEBUG, 20), (logging.INFO, 30), (logging.WARNING, 40), (logging.ERROR, 50), (60, 60)],
)
def test_python_levels_map_to_the_protocol_numbers(python_level: int, wire: int) -> None:
    assert wire_level(python_level) == wire
    assert wire_level(logging.CRITICAL) == level_number("fatal") == 60


def test_a_pretty_line_has_level_time_and_message_tagged_with_the_node(handler: Any, layer: RecordingLayer) -> None:
    before = int(time.time() * 1000)
    handler_logger(handler).info("hello %s", "world")
    (frame,) = layer.frames(1)
    assert set(frame) == {"type", "data", "uid"}
    assert frame["type"] == "logs" and frame["uid"] == "node-a"
    assert frame["data"]["level"] == 30 and frame["data"]["msg"] == "hello world"
    assert set(frame["data"]) == {"level", "time", "msg"}
    assert before <= frame["data"]["time"] <= int(time.time() * 1000)
    assert layer.sent[0][0] == "likha.logs" and layer.sent[0][1]["node"] == "node-a"


def test_records_below_the_logs_level_are_not_published(handler: Any, layer: RecordingLayer) -> None:
    logger = handler_logger(handler, level=1)
    with realtime(LOGS_LEVEL="warn"):
        logger.info("quiet")
        logger.warning("loud")
        logger.critical("fatal one")
    assert [f["data"]["msg"] for f in layer.frames(2)] == ["loud", "fatal one"]
    assert [f["data"]["level"] for f in layer.frames(2)] == [40, 60]
    with realtime(LOGS_LEVEL="trace"):
        logger.log(5, "a trace line")
    assert layer.frames(3)[2]["data"] == {**layer.frames(3)[2]["data"], "level": 10, "msg": "a trace line"}


def test_raw_style_carries_every_json_safe_attribute(handler: Any, layer: RecordingLayer) -> None:
    logger = handler_logger(handler)
    with realtime(LOGS_STYLE="raw"):
        logger.warning("raw %d", 7, extra={"request_id": "r-1", "thing": object(), "tags": ["a", 1]})
    (frame,) = layer.frames(1)
    data = frame["data"]
    assert data["msg"] == "raw 7" and data["level"] == 40 and data["name"] == logger.name
    assert data["request_id"] == "r-1" and data["tags"] == ["a", 1]
    assert data["funcName"] == "test_raw_style_carries_every_json_safe_attribute" and isinstance(data["lineno"], int)
    assert "thing" not in data and "args" not in data and "exc_info" not in data


def test_exceptions_are_streamed_with_their_traceback(handler: Any, layer: RecordingLayer) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        handler_logger(handler).exception("failed")
    (frame,) = layer.frames(1)
    assert frame["data"]["level"] == 50
    assert frame["data"]["msg"].startswith("failed\nTraceback") and "ValueError: boom" in frame["data"]["msg"]


@pytest.mark.django_db
def test_tokens_passwords_and_authorization_headers_are_redacted(handler: Any, layer: RecordingLayer) -> None:
    pair = tokens.issue_pair(User.objects.create_user("r@example.com", "pw-long-enough"))
    logger = handler_logger(handler)
    with realtime(LOGS_STYLE="raw"):
        logger.info("issued %s and %s", pair.access, pair.refresh)
        logger.info("login email=r@example.com password=hunter2secret next=1")
        logger.info('body {"email": "r@example.com", "password": "json secret 42"}')
        logger.info("headers {'HTTP_AUTHORIZATION': 'Bearer %s'}", pair.access)
        logger.info("Authorization: Bearer opaque-credential-99")
        logger.info("GET /websockets?access_token=%s&x=1", pair.access)
        logger.info("plain", extra={"token_copy": pair.refresh})
    frames = layer.frames(7)
    text = repr(frames)
    for secret in (pair.access, pair.refresh, "hunter2secret", "json secret 42", "opaque-credential-99"):
        assert secret not in text
    for secret in (pair.access.split(".")[1], pair.refresh.split(".")[2]):
        assert secret not in text
    messages = [f["data"]["msg"] for f in frames]
    assert messages[1] == "login email=r@example.com password=[REDACTED] next=1"
    assert messages[2] == 'body {"email": "r@example.com", "password": "[REDACTED]"}'
    assert messages[4] == "Authorization: Bearer [REDACTED]"
    assert messages[5] == "GET /websockets?access_token=[REDACTED]&x=1"
    assert frames[6]["data"]["token_copy"] == "[REDACTED]"


def test_raw_attributes_named_as_secrets_are_masked_whole(handler: Any, layer: RecordingLayer) -> None:
    """An attribute or dict entry is no text: redact() never sees its key beside it, so the key rule applies here."""
    logger = handler_logger(handler)
    extra = {
        "password": "hunter2",
        "body": {"api_key": {"id": 5}, "n": 1, "tags": ["a"], "note": "token=abc"},
        "session_count": 3,
        "refresh_token": None,
        "csrftoken": "",
    }
    with realtime(LOGS_STYLE="raw"):
        logger.info("plain", extra=extra)
    (frame,) = layer.frames(1)
    data = frame["data"]
    assert data["password"] == "[REDACTED]"
    assert data["body"] == {"api_key": "[REDACTED]", "n": 1, "tags": ["a"], "note": "token=[REDACTED]"}
    assert (data["session_count"], data["refresh_token"], data["csrftoken"]) == (3, None, "")


def test_records_marked_local_only_are_never_published(handler: Any, layer: RecordingLayer) -> None:
    logger = handler_logger(handler)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("traceback for the console only", extra=LOCAL_ONLY)
    logger.error("for the socket")
    assert [frame["data"]["msg"] for frame in layer.frames(1)] == ["for the socket"]
    assert len(layer.lines()) == 1 and handler.dropped == 0


@pytest.mark.parametrize("name", ["likha_realtime.logs.stream", "channels_redis.core", "redis", "asyncio", "daphne"])
def test_its_own_and_the_channel_layers_records_are_not_republished(handler: Any, name: str) -> None:
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        logger.error("would recurse")
    finally:
        logger.removeHandler(handler)
    assert handler.queue.qsize() == 0 and handler.dropped == 0


def test_a_stuck_publisher_never_blocks_the_logger_and_drops_are_counted() -> None:
    layer = RecordingLayer(block=True)
    handler = LogStreamHandler(layer=layer, queue_size=50, node_id="node-a")
    logger = handler_logger(handler)
    try:
        logger.info("first")
        assert layer.entered.wait(5), "the publisher thread never started"
        # The publisher is stuck for good: had a log call waited for it, this loop would never end.
        for n in range(1000):
            logger.info("line %d", n)
        assert handler.queue.qsize() == 50
        assert handler.dropped == 950
    finally:
        layer.release.set()
        handler.close()
    assert len(layer.frames(51)) == 51


def test_the_app_installs_the_handler_on_the_root_logger_when_a_layer_is_configured() -> None:
    root = logging.getLogger()
    assert any(isinstance(h, LogStreamHandler) for h in root.handlers)
    assert install_log_handler() is True
    assert sum(isinstance(h, LogStreamHandler) for h in root.handlers) == 1
    with override_settings(CHANNEL_LAYERS={}):
        assert install_log_handler() is False
    with realtime(LOGS_ENABLED=False):
        assert install_log_handler() is False
    assert handler_module._installed in root.handlers


class DownLayer(RecordingLayer):
    """A layer whose ``group_send`` fails like redis-py while ``down``; counts the attempts."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts = 0

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.attempts += 1
        if self.down:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        await super().group_send(group, message)


def fault_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "likha_realtime.logs.handler"]


def test_while_redis_fails_lines_skip_it_until_the_retry_time_and_the_fault_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.support import wait_until

    now = [100.0]
    layer = DownLayer()
    handler = LogStreamHandler(layer=layer, node_id="node-a", clock=lambda: now[0])
    logger = handler_logger(handler)
    try:
        with caplog.at_level(logging.INFO, logger="likha_realtime.logs.handler"):
            logger.info("first")  # fails: the next CHANNEL_LAYER_RETRY (1 s) of lines go to local sockets only
            wait_until(lambda: handler.unpublished == 1, 5, "the first line was not tried")
            for n in range(5):
                logger.info("line %d", n)
            wait_until(lambda: handler.unpublished == 6, 5, "the lines were not handled")
            assert layer.attempts == 2  # the failed send, retried once at once (a stale connection): no more
            layer.down = False
            now[0] += 1.0
            logger.info("back")
            assert [frame["data"]["msg"] for frame in layer.frames(1)] == ["back"]
            # The recovery is logged by the handler's thread once that line went out: wait for it, not for the frame.
            wait_until(lambda: len(fault_lines(caplog)) >= 2, 5, "the recovery was not logged")
    finally:
        handler.close()
    assert handler.publish_errors == 1 and handler.dropped == 0
    messages = fault_lines(caplog)
    assert messages[0] == (
        "log stream: the channel layer failed (ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection "
        "refused.); lines go to this process's sockets only, retried every 1s"
    )
    assert messages[1] == (
        "log stream: the channel layer answers again after 1.0s (1 failure(s), 6 line(s) not sent to other processes)"
    )
    assert len(messages) == 2
