"""Live-test harness: find or start Redis, provision a database, run real daphne processes, talk to them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_HELP = (
    "Live tests need Redis. Set REDIS_URL to a reachable server, start one on 127.0.0.1:6379, "
    "or install redis-server (Debian/Ubuntu: apt-get install redis-server) so the tests can start a private one."
)


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    """Terminate ``process`` if it still runs (killed after 10 s), and reap it."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until something listens on ``host:port`` (fails at once when ``process`` exits first)."""

    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(listening, timeout, f"nothing listening on {host}:{port} after {timeout}s", interval=0.05)


def redis_ping(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=timeout) as s:
            if parsed.password:
                user = parsed.username or "default"
                s.sendall(f"AUTH {user} {parsed.password}\r\n".encode())
                s.recv(64)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def find_or_start_redis() -> RedisServer:
    """``REDIS_URL`` (or the default) when it answers PING; else a private redis-server; else ``RuntimeError``."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    if redis_ping(url):
        return RedisServer(url)
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"No Redis answers at {url}. {REDIS_HELP}")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, 10, process)
    return RedisServer(f"redis://127.0.0.1:{port}/0", process)


@dataclass
class LiveDatabase:
    """A database of its own for the live servers: a SQLite file, or a fresh PostgreSQL database."""

    env: dict[str, str]
    drop: Any = None

    @classmethod
    def create(cls) -> LiveDatabase:
        base = os.environ.get("DATABASE_URL")
        if not base:
            path = Path(tempfile.mkdtemp(prefix="likha-live-")) / "live.sqlite3"
            return cls({"SQLITE_PATH": str(path)}, lambda: shutil.rmtree(path.parent, ignore_errors=True))
        import psycopg

        parsed = urlparse(base)
        name = f"likha_live_{uuid.uuid4().hex[:12]}"
        admin_url = parsed._replace(path="/postgres").geturl()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return cls({"DATABASE_URL": parsed._replace(path=f"/{name}").geturl()}, drop)

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=server_env(self.env, extra_env or {}),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout


LOGIN_THROTTLE_LIVE_LIMITS = {
    "LOGIN_ATTEMPTS_PER_ADDRESS": "100000",
    "LOGIN_FAILURES_PER_ADDRESS": "100000",
    "LOGIN_FAILURES_PER_ACCOUNT": "1000",
}


def server_env(*parts: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH", "PYTEST_CURRENT_TEST"}}
    env["DJANGO_SETTINGS_MODULE"] = "settings.base"
    env["PYTHONUNBUFFERED"] = "1"
    # Live tests log in from 127.0.0.1 far more often than an office does (fuzzing, churn, soak): the login counts
    # still run on Redis, far from their limits. test_login_throttle_live.py sets "" (the defaults) to test them.
    env.update(LOGIN_THROTTLE_LIVE_LIMITS)
    for part in parts:
        env.update(part)
    return env


@dataclass
class DaphneProcess:
    """One real server process: ``python -m likha_realtime.server`` on a free port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> DaphneProcess:
        handle, name = tempfile.mkstemp(prefix="likha-daphne-", suffix=".log")
        self.log_path = Path(name)
        log = os.fdopen(handle, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "likha_realtime.server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "settings.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        try:
            wait_for_port("127.0.0.1", self.port, 30, self.process)
        except Exception as exc:
            raise RuntimeError(f"daphne did not start:\n{self.log()}") from exc
        return self

    def stop(self) -> None:
        stop_process(self.process)
        if self.log_path is not None and not os.environ.get("LIKHA_KEEP_SERVER_LOGS"):
            self.log_path.unlink(missing_ok=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = "/websockets", **query: str) -> str:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?{qs}" if qs else "")

    def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.http + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def login(self, email: str, password: str) -> dict[str, Any]:
        status, body = self.post("/auth/login", {"email": email, "password": password})
        assert status == 200, body
        return body["data"]


# Debian's package (Playwright cannot download its own browser builds here): the Makefile installs it at this path and
# exports CHROMIUM to the test run, so both name one file.
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM = os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright (headless); a clear failure, never a skip, when either is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Debian's chromium at {CHROMIUM} (env CHROMIUM): run `make test`, which installs "
            "it, or `apt-get update && apt-get install -y chromium`, or set CHROMIUM to the browser's path."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The browser tests need the playwright package pinned in requirements-dev.txt: `make install-dev`.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()
