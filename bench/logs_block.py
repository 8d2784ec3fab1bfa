"""Log-stream benchmark: what a log call costs with no stream, a working stream, and a stream that never drains.

``python -m bench.logs_block`` (Django settings from settings.test). Results go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any


class BlockedLayer:
    """A channel layer whose ``group_send`` never returns (a stuck Redis or a reader that never reads)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        while not self.release.wait(0.05):
            pass


class FastLayer:
    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        return None


def per_call_us(logger: logging.Logger, calls: int) -> float:
    started = time.perf_counter()
    for n in range(calls):
        logger.info("request %d done for user %s", n, "someone")
    return (time.perf_counter() - started) / calls * 1e6


def main(calls: int = 20_000) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    import django

    django.setup()
    from likha_realtime.logs.handler import LogStreamHandler

    results: dict[str, Any] = {"calls": calls}
    for name, layer in (("no_stream", None), ("draining_stream", FastLayer()), ("stuck_stream", BlockedLayer())):
        logger = logging.getLogger(f"bench.logs.{name}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = LogStreamHandler(layer=layer, node_id="bench") if layer is not None else None
        if handler is not None:
            logger.addHandler(handler)
        results[f"{name}_us_per_call"] = round(per_call_us(logger, calls), 2)
        if handler is not None:
            results[f"{name}_dropped"] = handler.dropped
            if isinstance(layer, BlockedLayer):
                layer.release.set()
            handler.close()
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
