"""A fan-out attacker for live tests, run as its own process: many distinct subscriptions that all match one row.

``python -m tests.live.fanout_attacker URL KEY --connections 20 --per-connection 100`` opens the connections
(public role: no auth), subscribes each ``per-connection`` times to product ``KEY`` with a filter that differs by a
parameter (``name`` not equal to a value of its own), so no two subscriptions share a re-read, and reads every frame
it is sent (a client that stops reading is a slow reader, another limit). It runs in a process of its own so that
handling its frames does not share the test's interpreter (and GIL) with the victim whose latency the test measures.

Talks over stdin/stdout, one JSON object a line: ``{"ready": n}`` once all ``n`` subscriptions are confirmed (or
``{"error": frame}`` and exit 1); then for each ``count`` line read, ``{"frames": total update frames, "least":
fewest update frames of one subscription, "resyncs": resync frames, "other": other frames}``; exits at end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from typing import Any

import websockets


def subscribe_message(key: int, uid: str) -> str:
    query = {"fields": ["id", "name"], "filter": {"id": {"_eq": key}, "name": {"_neq": f"attacker-{uid}"}}}
    return json.dumps({"type": "subscribe", "collection": "products", "query": query, "uid": uid})


class Attacker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.updates: Counter[str] = Counter()
        self.resyncs = 0
        self.other: list[Any] = []

    async def connection(self, index: int, confirmed: asyncio.Queue[Any]) -> None:
        try:
            await self.subscribed_connection(index, confirmed)
        except Exception as error:  # before or after it is ready: the test sees it either way
            await confirmed.put({"exception": repr(error)})
            self.other.append({"exception": repr(error)})

    async def subscribed_connection(self, index: int, confirmed: asyncio.Queue[Any]) -> None:
        async with websockets.connect(
            self.args.url, max_queue=None, proxy=None, open_timeout=60, ping_interval=None, max_size=None
        ) as ws:
            uids = [f"c{index}s{n}" for n in range(self.args.per_connection)]
            for uid in uids:
                await ws.send(subscribe_message(self.args.key, uid))
            pending = set(uids)
            async for raw in ws:
                frame = json.loads(raw)
                if pending:
                    if frame.get("type") == "subscription" and frame.get("event") == "init":
                        pending.discard(frame.get("uid"))
                        if not pending:
                            await confirmed.put(None)
                        continue
                    await confirmed.put(frame)  # an error instead of an init
                    return
                self.count(frame)

    def count(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "subscription" and frame.get("event") == "update":
            self.updates[frame["uid"]] += 1
        elif frame.get("type") == "subscription" and frame.get("event") == "resync":
            self.resyncs += 1
        else:
            self.other.append(frame)

    def report(self) -> dict[str, Any]:
        expected = self.args.connections * self.args.per_connection
        least = min(self.updates.values()) if len(self.updates) == expected else 0
        return {"frames": sum(self.updates.values()), "least": least, "resyncs": self.resyncs, "other": self.other}

    async def run(self) -> int:
        confirmed: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.create_task(self.connection(i, confirmed)) for i in range(self.args.connections)]
        for _ in tasks:
            outcome = await confirmed.get()
            if outcome is not None:
                print(json.dumps({"error": outcome}), flush=True)
                return 1
        print(json.dumps({"ready": self.args.connections * self.args.per_connection}), flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "count":
                print(json.dumps(self.report()), flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("key", type=int)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--per-connection", type=int, default=100)
    sys.exit(asyncio.run(Attacker(parser.parse_args()).run()))


if __name__ == "__main__":
    main()
