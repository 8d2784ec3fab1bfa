"""The host ERP of the embedding test: a virtualenv with this repository pip-installed, its project, its database.

The virtualenv is built once per content of what ``pip install`` reads (the package sources, pyproject.toml,
requirements.txt and the other top-level files) and reused across sessions under that key, so a stale install is
never used: any change of those files makes a new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from scripts.require_postgres import unreachable
from tests.live.harness import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "project"
EMBEDDING_MD = ROOT / "docs" / "EMBEDDING.md"
PACKAGES = ("realtime_auth", "likha_realtime")

# docs/EMBEDDING.md writes a checkout of this repository as CHECKOUT and the port as 8000; the test runs exactly the
# documented command lines with those two replaced.
CHECKOUT = "/path/to/likha-erp-realtime"
DOC_PORT = "8000"
COMMANDS = {
    "install": f"pip install -r {CHECKOUT}/requirements.txt {CHECKOUT}",
    # Run in a shell (sh -c) by the test, which reads the variable it exports.
    "secret-key": "export ERP_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')",
    # Writes inventory/migrations/0001_initial.py: the test project has none, and gets 0002 only after it.
    "initial-migration": "python manage.py makemigrations inventory",
    "makemigrations": "python manage.py makemigrations --check --dry-run",
    "check": "python manage.py check",
    "migrate": "python manage.py migrate",
    "check-database": "python manage.py check --database default",
    "serve": f"likha-daphne -b 127.0.0.1 -p {DOC_PORT} erp.asgi:application",
}
# What the documented commands print (docs/EMBEDDING.md shows it; the test asserts it).
OUTPUTS = {
    "makemigrations": "No changes detected\n",
    "check": "System check identified no issues (0 silenced).\n",
}
# Files docs/EMBEDDING.md shows line for line (every non-blank line in some excerpt); others it may quote.
DOCUMENTED_FILES = ("erp/settings.py", "erp/asgi.py", "erp/urls.py", "inventory/apps.py", "inventory/realtime.py",
                    "inventory/views.py")  # fmt: skip
# Written by the reader after `makemigrations inventory` (it depends on 0001_initial): copied in after that command.
LATER_FILES = ("inventory/migrations/0002_public_group.py",)
# The host ERP's PostgreSQL server when neither DATABASE_URL nor TEST_DATABASE_URL names one: the Makefile's default.
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/likha"
POSTGRES_SCHEMES = ("postgres", "postgresql")
VENVS = Path(tempfile.gettempdir()) / "likha-embedding"
STALE_SECONDS = 3600  # other keys' virtualenvs unused this long are removed when a new one is built

# Variables of this repository's own settings and of the test run that a host process must not see.
NOT_FOR_THE_HOST = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SQLITE_PATH", "REDIS_URL", "REDIS_PREFIX",
                    "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_CURRENT_TEST")  # fmt: skip


def checkout_files() -> list[str]:
    """The files of this checkout as a clone would have them: tracked and untracked, minus ignored and deleted."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def install_inputs(files: list[str]) -> list[str]:
    """The files ``pip install <checkout>`` can read: the packages and every top-level file."""
    return [name for name in files if "/" not in name or name.split("/")[0] in PACKAGES]


def install_key(files: list[str]) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for name in install_inputs(files):
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def command(name: str, checkout: Path | None = None, port: int | None = None) -> list[str]:
    """A documented command line (``COMMANDS``) as arguments, with the checkout path and port of this run."""
    args = shlex.split(COMMANDS[name])
    if checkout is not None:
        args = [arg.replace(CHECKOUT, str(checkout)) for arg in args]
    if port is not None:
        args = [str(port) if arg == DOC_PORT else arg for arg in args]
    return args


@dataclass
class Venv:
    path: Path
    checkout: Path
    seconds: float  # time to create and install it (0 when an earlier session's was reused)

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This environment for a host process: the virtualenv first on PATH (as ``activate`` does), plus ``extra``."""
        env = {key: value for key, value in os.environ.items() if key not in NOT_FOR_THE_HOST}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_venv() -> Venv:
    """The virtualenv of this checkout's content, built (venv + documented ``pip install``) unless one exists."""
    files = checkout_files()
    key = install_key(files)
    VENVS.mkdir(parents=True, exist_ok=True)
    home = VENVS / key
    with locked(VENVS / f"{key}.lock"):
        if (home / "ready").exists() and (home / "venv" / "bin" / "likha-daphne").exists():
            os.utime(home)  # in use: remove_stale() leaves it alone for another STALE_SECONDS
            return Venv(home / "venv", home / "likha-erp-realtime", 0.0)
        shutil.rmtree(home, ignore_errors=True)
        started = time.monotonic()
        checkout = home / "likha-erp-realtime"
        for name in files:
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
        venv = Venv(home / "venv", checkout, 0.0)
        run([sys.executable, "-m", "venv", str(venv.path)], cwd=home, env=os.environ, timeout=120)
        run(command("install", checkout), cwd=home, env=venv.env(), timeout=600)
        venv.seconds = time.monotonic() - started
        (home / "ready").write_text(key)
    remove_stale(keep=key)
    return venv


def remove_stale(keep: str) -> None:
    for entry in VENVS.iterdir():
        if entry.is_dir() and entry.name != keep and time.time() - entry.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(entry, ignore_errors=True)
            (VENVS / f"{entry.name}.lock").unlink(missing_ok=True)


def run(args: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; fails with its whole output when it exits non-zero."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"{shlex.join(args)} exited with {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n"
            f"{result.stderr}"
        )
    return result


def copy_project(target: Path) -> Path:
    """The test project without LATER_FILES (copy_later_files() adds them)."""
    later = {PROJECT / name for name in LATER_FILES}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if Path(directory, name) in later}
        return skipped | set(shutil.ignore_patterns("__pycache__", "*.pyc")(directory, names))

    shutil.copytree(PROJECT, target, ignore=ignore)
    return target


def copy_later_files(target: Path) -> None:
    for name in LATER_FILES:
        shutil.copy2(PROJECT / name, target / name)


def secret_key(venv: Venv, cwd: Path) -> str:
    """The key the guide's ``export ERP_SECRET_KEY=…`` line sets, run in a shell with the host's python."""
    result = run(["sh", "-c", f'{COMMANDS["secret-key"]} && printf %s "$ERP_SECRET_KEY"'], cwd, venv.env())
    return result.stdout


def postgres_url(environ: Mapping[str, str]) -> str:
    """The PostgreSQL server the host ERP runs on: ``DATABASE_URL`` when it names one (the PostgreSQL pass), else
    ``TEST_DATABASE_URL`` (the Makefile exports it to both passes), else the Makefile's default."""
    for name in ("DATABASE_URL", "TEST_DATABASE_URL"):
        if urlparse(environ.get(name, "")).scheme in POSTGRES_SCHEMES:
            return environ[name]
    return DEFAULT_POSTGRES_URL


@dataclass
class Database:
    """A PostgreSQL database of its own, on the server of ``postgres_url()``."""

    server: str
    name: str = field(default_factory=lambda: f"likha_embedding_{uuid.uuid4().hex[:12]}")

    @classmethod
    def create(cls, environ: Mapping[str, str] = os.environ) -> Database:
        """A new database; a test failure that says what to do when the server cannot be reached."""
        import psycopg

        url = postgres_url(environ)
        problem = unreachable(url)
        if problem is not None:
            pytest.fail(f"The embedding test runs its host ERP on PostgreSQL. {problem}", pytrace=False)
        database = cls(urlparse(url)._replace(path="/postgres").geturl())
        with psycopg.connect(database.server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database.name}"')
        return database

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def env(self) -> dict[str, str]:
        """The host settings' variables (erp/settings.py) for this database."""
        parsed = urlparse(self.server)
        return {
            "ERP_DB_NAME": self.name,
            "ERP_DB_HOST": parsed.hostname or "127.0.0.1",
            "ERP_DB_PORT": str(parsed.port or 5432),
            "ERP_DB_USER": parsed.username or "postgres",
            "ERP_DB_PASSWORD": parsed.password or "",
        }


@dataclass
class Server:
    """The host's server: the installed ``likha-daphne`` console script, run as docs/EMBEDDING.md says."""

    venv: Venv
    project: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    log_name: str = "server.log"  # in the project directory

    def start(self) -> Server:
        self.log_path = self.project / self.log_name
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command("serve", port=self.port), cwd=self.project, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port("127.0.0.1", self.port, 60, self.process)
        except (AssertionError, RuntimeError) as exc:
            raise AssertionError(f"likha-daphne did not start:\n{self.log()}") from exc
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        data = None if body is None else (body if isinstance(body, bytes) else json_bytes(body))
        sent = {"Content-Type": "application/json"} if data is not None else {}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        request = urllib.request.Request(self.url(path), data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Response(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers.items()), err.read())


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()
