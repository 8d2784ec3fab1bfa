"""Slow readers on the project's server, run as a real process with a raw ASGI app that floods on request
(``flood_app``): a client that stops reading is closed 4429 and dropped, its application is told, and a client on
the same server that reads gets everything."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.likha_realtime.test_server import (
    CLIENT_TIMEOUT,
    HOST,
    ROOT,
    SERVER,
    RunningServer,
    free_port,
    server_env,
    stop,
    wait_until_listening,
)
from tests.slow_client import NonReadingClient
from tests.support import wait_until

LIMIT = 256 * 1024
SLOW_LINE = "slow reader closed 4429 (path /): "
DROP_DEADLINE = 30.0  # flooding, the close handshake timeout (1 s) and a loaded machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVER, "-b", HOST, "-p", str(port), "tests.likha_realtime.flood_app:application"],
            cwd=ROOT,
            env=server_env(WEBSOCKETS_SEND_BUFFER_MAX_BYTES=str(LIMIT)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningServer(process, port, log)
    try:
        wait_until_listening(running)
        yield running
    finally:
        stop(process)


def slow_lines(server: RunningServer) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if SLOW_LINE in line]


def disconnects(server: RunningServer) -> list[str]:
    return [line for line in server.log.read_text().splitlines() if line.startswith("flood app: disconnect")]


def test_a_client_that_stops_reading_is_closed_dropped_and_its_application_told(server: RunningServer) -> None:
    lines_before, disconnects_before = len(slow_lines(server)), len(disconnects(server))
    client = NonReadingClient(HOST, server.port)
    try:
        client.send_text("flood:2000:10000")  # 20 MB, far more than the kernel's buffers and the limit
        wait_until(client.dropped, DROP_DEADLINE, "the server kept the non-reading client's connection")
    finally:
        client.close()
    wait_until(lambda: len(disconnects(server)) > disconnects_before, CLIENT_TIMEOUT, "the app was not told")
    assert disconnects(server)[disconnects_before:] == ["flood app: disconnect 1006"]  # dropped, no close handshake
    (line,) = slow_lines(server)[lines_before:]
    assert line.endswith(f" would exceed SEND_BUFFER_MAX_BYTES={LIMIT} (client 127.0.0.1:{client_port(line)})")


def client_port(line: str) -> str:
    return line.rsplit(":", 1)[1].rstrip(")")


def test_a_client_that_reads_gets_everything_while_a_non_reader_on_the_server_is_dropped(
    server: RunningServer,
) -> None:
    lines_before = len(slow_lines(server))
    slow = NonReadingClient(HOST, server.port)
    try:
        slow.send_text("flood:2000:10000")
        count, size = 400, 16 * 1024  # 6.5 MB: 25 x the limit, read as it comes
        with connect(server.url(), proxy=None, open_timeout=CLIENT_TIMEOUT, max_size=None) as reader:
            reader.send(f"flood:{count}:{size}")
            received = [reader.recv(timeout=CLIENT_TIMEOUT) for _ in range(count + 1)]
            assert received == ["x" * size] * count + ["done"]
            reader.send("ping")
            assert reader.recv(timeout=CLIENT_TIMEOUT) == "pong", "the reader's socket is still open"
        wait_until(slow.dropped, DROP_DEADLINE, "the server kept the non-reading client's connection")
    finally:
        slow.close()
    assert len(slow_lines(server)) == lines_before + 1, "only the non-reader was closed"
