"""What an operator and a load balancer see of real daphne processes: /metrics answers for every process of a
deployment (PROMETHEUS_MULTIPROC_DIR), /healthz and /readyz, and static files served with DEBUG off."""

from __future__ import annotations

import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.live.client import JsonSocket
from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import DaphneProcess, LiveDatabase, RedisServer, free_port, server_env
from tests.support import wait_until

WAIT = 15.0  # a bound for a failing test, not a pace
REST_HANDSHAKE = 'likha_realtime_connections{mode="handshake",socket="rest"}'


def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def value(body: bytes, series: str) -> float | None:
    match = re.search(rf"^{re.escape(series)} (\S+)$", body.decode(), re.MULTILINE)
    return None if match is None else float(match.group(1))


@pytest.fixture
def deployment(redis_server: RedisServer, live_db: LiveDatabase) -> Iterator[list[DaphneProcess]]:
    """Two server processes of one deployment: one Redis, one database, one metrics directory."""
    with tempfile.TemporaryDirectory(prefix="likha-metrics-") as directory:
        own = {"REDIS_URL": redis_server.url, "REDIS_PREFIX": f"ops-{free_port()}"}
        own["PROMETHEUS_MULTIPROC_DIR"] = directory
        env = server_env(live_db.env, own)
        servers = [DaphneProcess(env).start(), DaphneProcess(env).start()]
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


def authenticated(server: DaphneProcess, token: str) -> JsonSocket:
    socket = JsonSocket(server.ws_url())
    socket.send({"type": "auth", "access_token": token})
    assert socket.recv()["status"] == "ok"
    return socket


def test_metrics_on_either_process_count_the_sockets_of_both_and_forget_a_stopped_one(
    deployment: list[DaphneProcess],
) -> None:
    first, second = deployment
    token = first.login(*ADMIN)["access_token"]

    def connections() -> float | None:
        status, _, body = get(first.http + "/metrics", token)
        assert status == 200
        return value(body, REST_HANDSHAKE)

    def successes(server: DaphneProcess) -> float | None:
        body = get(server.http + "/metrics", token)[2]
        return value(body, 'likha_realtime_auth_total{reason="ok",result="success",socket="rest"}')

    here, there, other = authenticated(first, token), authenticated(second, token), authenticated(second, token)
    assert wait_until(lambda: connections() == 3, WAIT)
    assert successes(first) == successes(second) == 3  # the same figures from either process
    here.close()
    assert wait_until(lambda: connections() == 2, WAIT)
    second.stop()  # its two sockets go with it: the process counts no longer
    assert wait_until(lambda: connections() == 0, WAIT)
    assert successes(first) == 3  # counters keep what happened
    there.close()
    other.close()


def test_metrics_refuse_anonymous_scrapers(deployment: list[DaphneProcess]) -> None:
    status, _, body = get(deployment[0].http + "/metrics")
    assert status == 403
    assert b"likha_realtime" not in body


def test_healthz_and_readyz_answer_for_a_ready_server(start_server: StartServer) -> None:
    server = start_server()
    assert get(server.http + "/healthz")[::2] == (200, b'{"status": "ok"}')
    assert get(server.http + "/readyz")[::2] == (
        200,
        b'{"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}',
    )


def test_readyz_is_503_while_redis_is_unreachable_and_healthz_still_answers(start_server: StartServer) -> None:
    server = start_server(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert get(server.http + "/healthz")[0] == 200
    assert get(server.http + "/readyz")[::2] == (
        503,
        b'{"status": "unavailable", "checks": {"database": "ok", "channel_layer": "error"}}',
    )


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/static/admin/css/base.css", "text/css"), ("/static/erp_demo/demo.js", "text/javascript")],
)
def test_static_files_are_served_with_debug_off(start_server: StartServer, path: str, content_type: str) -> None:
    server = start_server(DEBUG="false")
    status, headers, body = get(server.http + path)
    assert (status, headers["Content-Type"].split(";")[0]) == (200, content_type)
    assert body


def test_the_admin_login_page_links_its_stylesheet(start_server: StartServer) -> None:
    server = start_server(DEBUG="false")
    status, _, body = get(server.http + "/admin/login/")
    assert status == 200
    assert b'href="/static/admin/css/base.css"' in body
