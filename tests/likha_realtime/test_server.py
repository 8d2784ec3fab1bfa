"""The project's server (likha_realtime.server), run as a real process, as seen by a WebSocket client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close
from websockets.sync.client import connect

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_DEADLINE = 30.0
CLIENT_TIMEOUT = 10.0
SERVER = [sys.executable, "-m", "likha_realtime.server"]


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str = "/") -> str:
        return f"ws://{HOST}:{self.port}{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_env(**overrides: str | None) -> dict[str, str]:
    """This environment, with the project importable and ``overrides`` applied."""
    env = dict(os.environ)
    # The project root only: tests/likha_realtime on the path would shadow libraries (http, graphql) with test packages.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def wait_until_listening(server: RunningServer) -> None:
    def listening() -> bool:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_until(listening, START_DEADLINE)
    except AssertionError:
        pytest.fail(f"server not listening on {HOST}:{server.port} after {START_DEADLINE}s:\n{server.log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVER, "-b", HOST, "-p", str(port), "tests.likha_realtime.close_app:application"],
            cwd=ROOT,
            env=server_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningServer(process, port, log)
    try:
        wait_until_listening(running)
        yield running
    finally:
        stop(process)


def close_seen_by_client(server: RunningServer, command: str) -> Close | None:
    """Ask the app to close with ``command``; the close frame the client receives."""
    with connect(server.url(), proxy=None, open_timeout=CLIENT_TIMEOUT, close_timeout=CLIENT_TIMEOUT) as ws:
        ws.send(command)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=CLIENT_TIMEOUT)
    return closed.value.rcvd


def run_server_expecting_exit(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER, "-b", HOST, "-p", str(free_port()), *args],
        cwd=ROOT,
        env=server_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("code", "reason"), [(4403, "Forbidden"), (4401, "Unauthorized")])
def test_close_reason_reaches_the_client(server: RunningServer, code: int, reason: str) -> None:
    assert close_seen_by_client(server, f"close:{code}:{reason}") == Close(code, reason)


@pytest.mark.parametrize("command", ["close:1000:", "close::"], ids=["code 1000", "no code"])
def test_a_close_without_a_reason_reaches_the_client_as_1000_with_no_reason(
    server: RunningServer, command: str
) -> None:
    assert close_seen_by_client(server, command) == Close(1000, "")


def test_a_long_multibyte_reason_is_truncated_to_123_bytes_at_a_character_boundary(
    server: RunningServer,
) -> None:
    # 1 + 60 * 3 bytes; byte 123 falls inside the 41st "€", which must be dropped whole.
    reason = "a" + "€" * 60

    received = close_seen_by_client(server, f"close:4400:{reason}")

    assert received is not None
    assert received.code == 4400
    assert received.reason == "a" + "€" * 40
    assert len(received.reason.encode("utf-8")) <= 123


def test_a_reason_that_fits_exactly_in_123_bytes_is_kept_whole(server: RunningServer) -> None:
    reason = "😀" * 30 + "abc"  # 4 * 30 + 3 = 123 bytes

    assert close_seen_by_client(server, f"close:4000:{reason}") == Close(4000, reason)


def test_closing_before_accept_rejects_the_handshake_with_http_403(server: RunningServer) -> None:
    with (
        pytest.raises(InvalidStatus) as rejected,
        connect(server.url("/reject"), proxy=None, open_timeout=CLIENT_TIMEOUT),
    ):
        pass

    assert rejected.value.response.status_code == 403


def test_a_close_code_outside_1000_and_3000_to_4999_is_not_sent_as_given(server: RunningServer) -> None:
    # As in daphne, the app's send() raises; daphne then closes the failed app's socket with 1011.
    received = close_seen_by_client(server, "close:1001:Going away")

    assert received is not None
    assert received.code == 1011


def test_the_server_keeps_serving_after_sockets_close(server: RunningServer) -> None:
    assert close_seen_by_client(server, "close:4403:Forbidden") == Close(4403, "Forbidden")
    assert server.process.poll() is None


def test_a_configuration_error_prints_one_line_and_exits_with_status_2() -> None:
    result = run_server_expecting_exit(
        "settings.asgi:application", DJANGO_SETTINGS_MODULE="settings.base", WEBSOCKETS_REST_AUTH="bogus"
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("configuration error: ")]
    assert len(errors) == 1, result.stderr
    assert "WEBSOCKETS_REST_AUTH" in errors[0]


def test_the_settings_default_to_the_projects_own() -> None:
    # No DJANGO_SETTINGS_MODULE: settings.base is loaded, which the bogus variable proves by failing in it.
    result = run_server_expecting_exit(
        "settings.asgi:application", DJANGO_SETTINGS_MODULE=None, WEBSOCKETS_REST_AUTH="bogus"
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "configuration error: WEBSOCKETS_REST_AUTH=" in result.stderr


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLWEtdG9rZW4"


def test_the_access_log_never_prints_a_token_from_the_query_string(server: RunningServer) -> None:
    url = f"http://{HOST}:{server.port}/items/products?access_token={JWT}&password=hunter2&limit=1"
    with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as response:
        assert response.read() == b"ok"

    def logged() -> bool:
        return "/items/products?" in server.log.read_text()

    wait_until(logged, START_DEADLINE)
    (line,) = [line for line in server.log.read_text().splitlines() if "/items/products?" in line]
    assert '"GET /items/products?access_token=[REDACTED]&password=[REDACTED]&limit=1" 200' in line, line
    assert "eyJ" not in server.log.read_text() and "hunter2" not in server.log.read_text()


def test_a_host_projects_asgi_module_chooses_its_own_settings(tmp_path: Path) -> None:
    # An ERP's asgi.py (Django's template) sets its own default: the server must not have set ours first.
    (tmp_path / "host_asgi.py").write_text(
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'host_settings')\n"
        "print('settings:', os.environ['DJANGO_SETTINGS_MODULE'], flush=True)\n"
        "sys.exit(3)\n"
    )
    result = run_server_expecting_exit(
        "host_asgi:application", DJANGO_SETTINGS_MODULE=None, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}"
    )

    assert (result.returncode, result.stdout) == (3, "settings: host_settings\n"), result.stderr


def test_the_callers_settings_module_wins(tmp_path: Path) -> None:
    (tmp_path / "host_asgi.py").write_text(
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'host_settings')\n"
        "print('settings:', os.environ['DJANGO_SETTINGS_MODULE'], flush=True)\n"
        "sys.exit(3)\n"
    )
    result = run_server_expecting_exit(
        "host_asgi:application", DJANGO_SETTINGS_MODULE="erp.settings.prod", PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}"
    )

    assert (result.returncode, result.stdout) == (3, "settings: erp.settings.prod\n"), result.stderr


def test_the_application_argument_is_required_as_in_daphne(capsys: pytest.CaptureFixture[str]) -> None:
    from likha_realtime.server import CommandLineInterface

    with pytest.raises(SystemExit) as exited:
        CommandLineInterface().parser.parse_args(["-b", HOST, "-p", "8000"])

    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: the following arguments are required: application")


def test_sockets_are_never_timed_out_by_default() -> None:
    from likha_realtime.server import CommandLineInterface

    args = CommandLineInterface().parser.parse_args(["-b", HOST, "-p", "8000", "settings.asgi:application"])

    assert args.websocket_timeout == -1
    assert args.application == "settings.asgi:application"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("Forbidden", "Forbidden"),
        ("é" * 62, "é" * 61),  # 124 bytes; the 62nd "é" would straddle the limit
        ("x" * 122 + "😀", "x" * 122),
        ("bad \ud800 surrogate", "bad ? surrogate"),
    ],
)
def test_close_reasons_are_truncated_without_splitting_a_character(reason: str, expected: str) -> None:
    from likha_realtime.server import truncate_close_reason

    assert truncate_close_reason(reason) == expected
