"""Embedding-test fixtures: the host's virtualenv (per session); its project, database and server (per module)."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.embedding.host import (
    Database,
    Server,
    Venv,
    build_venv,
    command,
    copy_later_files,
    copy_project,
    run,
    secret_key,
)
from tests.live.harness import RedisServer

# Users of the host (Django's auth.User), made with the host's own manage.py: a clerk who may view items and
# warehouses through a group, and a superuser.
CLERK = {"username": "clerk", "email": "clerk@erp.example", "password": "clerk-pass-8641"}
BOSS = {"username": "boss", "email": "boss@erp.example", "password": "boss-pass-2093"}
MAKE_USERS = f"""
from django.contrib.auth.models import Group, Permission, User
clerks = Group.objects.create(name="Clerks")
clerks.permissions.add(*Permission.objects.filter(codename__in=["view_item", "view_warehouse"]))
User.objects.create_user({CLERK["username"]!r}, {CLERK["email"]!r}, {CLERK["password"]!r}).groups.add(clerks)
User.objects.create_superuser({BOSS["username"]!r}, {BOSS["email"]!r}, {BOSS["password"]!r})
"""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def host_venv(pytestconfig: pytest.Config) -> Venv:
    venv = build_venv()
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        if venv.seconds:
            print(f"\nembedding: virtualenv created and this repository pip-installed in {venv.seconds:.1f}s")
        else:
            print(f"\nembedding: reusing the virtualenv of this content ({venv.path})")
    return venv


@dataclass
class Host:
    """The set-up host: its project directory, environment, the documented commands' outputs and its server."""

    venv: Venv
    project: Path
    env: dict[str, str]
    outputs: dict[str, str]
    server: Server


@pytest.fixture(scope="module")
def host(host_venv: Venv, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    project = copy_project(tmp_path_factory.mktemp("host") / "erp")
    database = Database.create()
    server: Server | None = None
    try:
        env = host_venv.env(
            {
                **database.env(),
                "ERP_SECRET_KEY": secret_key(host_venv, project),
                "REDIS_URL": redis_server.url,
                "REDIS_PREFIX": f"likha-embedding-{uuid.uuid4().hex[:8]}",
            }
        )
        outputs = {"initial-migration": run(command("initial-migration"), project, env).stdout}
        copy_later_files(project)
        for step in ("makemigrations", "check", "migrate", "check-database"):
            outputs[step] = run(command(step), project, env).stdout
        run(["python", "manage.py", "shell", "-c", MAKE_USERS], project, env)
        server = Server(host_venv, project, env).start()
        yield Host(host_venv, project, env, outputs, server)
    finally:
        if server is not None:
            server.stop()
        database.drop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints the host server's output after a failed test (pytest shows it with the failure)."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "host" in request.fixturenames:
        host: Host = request.getfixturevalue("host")
        print(f"--- likha-daphne output\n{host.server.log()}")
