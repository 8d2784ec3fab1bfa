"""Helpers of the log-stream tests: a channel layer stand-in that records (or blocks) publishing, and a logger."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from typing import Any

from likha_realtime.logs.handler import LogStreamHandler

_names = itertools.count()


class RecordingLayer:
    """A cross-process layer stand-in: ``group_send`` records; ``block`` makes it wait until ``release``."""

    def __init__(self, block: bool = False) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.arrived = threading.Condition()
        self.entered = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.entered.set()
        while not self.release.wait(0.05):
            pass
        with self.arrived:
            self.sent.append((group, message))
            self.arrived.notify_all()

    def frames(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        """The first ``count`` published lines as decoded frames (waits for them)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.lines()) >= count, timeout)
        lines = self.lines()
        assert len(lines) >= count, f"{len(lines)} line(s) published, expected {count}"
        return [json.loads(text) for _, text in lines[:count]]

    def lines(self) -> list[tuple[int, str]]:
        return [tuple(line) for _, message in self.sent for line in message["lines"]]  # type: ignore[misc]


def handler_logger(handler: LogStreamHandler, level: int = logging.DEBUG) -> logging.Logger:
    """A fresh logger feeding only ``handler`` (never the root logger's handlers)."""
    logger = logging.getLogger(f"tests.logs.app{next(_names)}")
    logger.propagate = False
    logger.setLevel(level)
    logger.addHandler(handler)
    return logger
