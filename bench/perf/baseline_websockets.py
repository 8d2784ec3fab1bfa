"""Baseline (b) of ``make bench``: a minimal server on the ``websockets`` library sending the same frames (the Python
ceiling on this machine). ``python -m bench.perf.baseline_websockets PORT HTTP_PORT``: WebSocket clients on PORT get
an empty ``init`` for their ``subscribe``; a ``PATCH`` (any path) on HTTP_PORT with ``{"stock": n}`` is published on
Redis (REDIS_URL, REDIS_PREFIX), and every process broadcasts the REST update frame with that stock to its clients."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import redis.asyncio as redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

INIT = json.dumps({"type": "subscription", "event": "init", "data": [], "uid": "b"})
CHANNEL = os.environ.get("REDIS_PREFIX", "baseline") + ":writes"
clients: set[ServerConnection] = set()


async def socket(connection: ServerConnection) -> None:
    async for text in connection:
        if json.loads(text).get("type") == "subscribe":
            await connection.send(INIT)
            clients.add(connection)
    clients.discard(connection)


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, publisher: Any) -> None:
    """Just enough HTTP/1.1 (keep-alive, Content-Length) for the benchmark's writer."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b"{}"
            stock = json.loads(body).get("stock", 0)
            await publisher.publish(CHANNEL, str(stock))
            reply = json.dumps({"data": {"id": 1, "stock": stock}}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                + reply
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def relay(client: Any) -> None:
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    async for message in pubsub.listen():
        if message.get("type") != "message":
            continue
        stock = int(message["data"])
        frame = {"type": "subscription", "event": "update", "data": [{"id": 1, "stock": stock}], "uid": "b"}
        broadcast(clients, json.dumps(frame))


async def main(port: int, http_port: int) -> None:
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    relaying = asyncio.create_task(relay(client))
    server = await asyncio.start_server(lambda r, w: http(r, w, client), "127.0.0.1", http_port)
    async with serve(socket, "127.0.0.1", port, compression=None, ping_interval=None, max_queue=None), server:
        await relaying


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
