"""An ERP that embeds this package as docs/EMBEDDING.md says, pip-installed into a virtualenv of its own.

The host project (tests/embedding/project) has its own settings, Django's ``auth.User`` and an app ``inventory`` whose
``Item`` is registered as a collection in ``ready()``. It runs under the installed ``likha-daphne`` on Redis and
PostgreSQL, and a client hears of writes to its model on the REST and GraphQL sockets.
"""

from __future__ import annotations

import json
import time
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.embedding.conftest import BOSS, CLERK, Host
from tests.embedding.host import OUTPUTS, Server, Venv, run
from tests.likha_realtime.http.test_server_info import PUBLIC_SHAPE
from tests.live.client import JsonSocket
from tests.support import write_until_seen

# Bounds for a busy machine: the first test also builds the virtualenv (pip install) and sets the host up.
pytestmark = [pytest.mark.live, pytest.mark.timeout(600)]

ALLOWED_ORIGIN = "https://app.erp.example"  # erp/settings.py allows it for browsers
OTHER_ORIGIN = "https://evil.example"
# Modules that erp/settings.py names (apps, the channel layer) and the server the guide runs.
GUIDE_MODULES = ("corsheaders", "rest_framework", "rest_framework_simplejwt", "channels", "channels_redis", "daphne")
FRAME_TIMEOUT = 10  # a bound for failures on a busy machine, not a pace


def login(host: Host, user: dict[str, str], by: str = "username") -> dict[str, Any]:
    response = host.server.request("POST", "/auth/login", {by: user[by], "password": user["password"]})
    assert response.status == 200, response.body
    data: dict[str, Any] = response.body["data"]
    return data


def token(host: Host, user: dict[str, str]) -> str:
    return str(login(host, user)["access_token"])


def socket(host: Host, path: str, **kwargs: Any) -> JsonSocket:
    return JsonSocket(host.server.url(path, "ws"), **kwargs)


def test_the_documented_commands_set_the_project_up(host: Host) -> None:
    # The test project has no 0001_initial: the guide's makemigrations writes it, and 0002 depends on it.
    assert "inventory/migrations/0001_initial.py" in host.outputs["initial-migration"]
    assert (host.project / "inventory" / "migrations" / "0001_initial.py").is_file()
    assert host.outputs["makemigrations"] == OUTPUTS["makemigrations"]
    assert host.outputs["check"] == OUTPUTS["check"]
    assert "Applying inventory.0002_public_group... OK" in host.outputs["migrate"]
    assert host.outputs["check-database"] == OUTPUTS["check"]  # the Public group exists (realtime_auth.W001)


def test_the_server_starts_without_configuration_warnings(host: Host) -> None:
    # likha-daphne runs the deployment checks at start (channel layer, DEBUG, signing key, Public group).
    assert "configuration warning" not in host.server.log()


# Another settings module of the host: erp.settings with 5-minute access tokens (erp.settings says 15).
OTHER_SETTINGS = """\
from datetime import timedelta

from erp.settings import *  # noqa: F403

SIMPLE_JWT = {**SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5)}  # noqa: F405
"""


def test_likha_daphne_serves_the_settings_module_the_caller_names(host: Host) -> None:
    """erp/asgi.py defaults DJANGO_SETTINGS_MODULE to erp.settings (``setdefault``); the installed console script,
    given another module in the environment, serves that one."""
    (host.project / "erp" / "settings_short_tokens.py").write_text(OTHER_SETTINGS)
    env = {**host.env, "DJANGO_SETTINGS_MODULE": "erp.settings_short_tokens"}
    server = Server(host.venv, host.project, env, log_name="server-short-tokens.log").start()
    try:
        response = server.request("POST", "/auth/login", {"username": CLERK["username"], "password": CLERK["password"]})
        assert response.status == 200, response.body
        assert response.body["data"]["expires"] == 5 * 60 * 1000
    finally:
        server.stop()
    assert login(host, CLERK)["expires"] == 15 * 60 * 1000  # the documented server: erp.settings


def test_a_plain_pip_install_brings_everything_the_guide_uses(host_venv: Venv) -> None:
    """The package declares every distribution its code imports and the guide's settings name (a user who installs
    it without requirements.txt gets them too)."""
    script = Path(__file__).with_name("declared.py")
    result = run(["python", str(script), "likha-realtime", *GUIDE_MODULES], host_venv.path, host_venv.env())
    assert json.loads(result.stdout) == []


def test_users_of_the_hosts_user_model_log_in_by_username_and_by_email(host: Host) -> None:
    for by in ("username", "email"):
        data = login(host, CLERK, by)
        assert sorted(data) == ["access_token", "expires", "refresh_token"]
        assert data["expires"] == 15 * 60 * 1000  # the host's SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]


def test_a_failed_login_answers_the_protocol_envelope(host: Host) -> None:
    response = host.server.request("POST", "/auth/login", {"username": "clerk", "password": "wrong"})
    assert (response.status, response.body) == (
        401,
        {"errors": [{"message": "Invalid user credentials.", "extensions": {"code": "INVALID_CREDENTIALS"}}]},
    )
    response = host.server.request("POST", "/auth/login", {"username": "clerk"})
    assert (response.status, response.body) == (
        400,
        {"errors": [{"message": "password: This field is required.", "extensions": {"code": "INVALID_PAYLOAD"}}]},
    )


def test_the_hosts_own_views_are_left_as_they_are(host: Host) -> None:
    ping = host.server.request("GET", "/erp/ping", headers={"Origin": ALLOWED_ORIGIN})
    assert (ping.status, ping.body) == (200, {"ok": True})
    assert ping.header("Access-Control-Allow-Origin") is None  # CORS is for the realtime routes only
    # The host's DRF API keeps DRF's error format: the realtime apps set no global EXCEPTION_HANDLER.
    report = host.server.request("GET", "/erp/api/stock-report")
    assert (report.status, report.body) == (403, {"detail": "Authentication credentials were not provided."})


def test_browsers_on_the_allowed_origin_get_cors_on_the_realtime_routes(host: Host) -> None:
    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = host.server.request("OPTIONS", "/auth/login", headers=preflight)
    assert allowed.status == 200
    assert allowed.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    refused = host.server.request("OPTIONS", "/auth/login", headers={**preflight, "Origin": OTHER_ORIGIN})
    assert refused.header("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("path", ["/websockets", "/graphql", "/websockets/logs"])
def test_sockets_refuse_pages_of_other_origins(host: Host, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        socket(host, path, origin=OTHER_ORIGIN)
    assert refused.value.response.status_code == 403


def test_sockets_take_pages_of_the_allowed_origin(host: Host) -> None:
    with socket(host, "/websockets", origin=ALLOWED_ORIGIN) as ws:
        assert ws.request({"type": "auth", "access_token": token(host, CLERK)}) == {"type": "auth", "status": "ok"}
    with socket(host, "/graphql", origin=ALLOWED_ORIGIN, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"access_token": token(host, CLERK)}}
        assert ws.request(init) == {"type": "connection_ack"}


def test_server_info_describes_the_sockets(host: Host) -> None:
    response = host.server.request("GET", "/server/info")
    assert (response.status, response.body) == (
        200,
        {"data": PUBLIC_SHAPE},
    )


def test_a_collection_from_the_collections_setting_is_served(host: Host) -> None:
    boss = token(host, BOSS)
    created = host.server.request("POST", "/items/warehouses", {"name": "North"}, token=boss)
    assert created.status == 200, created.body
    key = created.body["data"]["id"]
    read = host.server.request("GET", f"/items/warehouses/{key}", token=token(host, CLERK))
    assert (read.status, read.body) == (200, {"data": {"id": key, "name": "North"}})


def test_the_rest_socket_hears_of_writes_to_the_hosts_model(host: Host) -> None:
    boss = token(host, BOSS)
    with socket(host, "/websockets") as ws:
        # The socket's password login takes the user model's USERNAME_FIELD too.
        auth = ws.request({"type": "auth", "username": CLERK["username"], "password": CLERK["password"]})
        assert (auth["type"], auth["status"], sorted(auth)) == ("auth", "ok", ["refresh_token", "status", "type"])
        subscribe = {"collection": "stock_items", "query": {"filter": {"sku": {"_starts_with": "REST-"}}}}
        assert ws.request({"type": "subscribe", **subscribe, "uid": "s1"}) == {
            "type": "subscription",
            "event": "init",
            "data": [],
            "uid": "s1",
        }
        new = {"sku": "REST-1", "name": "Hex bolt M8", "quantity": 5, "unit_cost": "0.25"}
        created = host.server.request("POST", "/items/stock_items", new, token=boss)
        assert created.status == 200, created.body
        key = created.body["data"]["id"]
        assert created.body["data"] == {"id": key, **new}  # a superuser reads every field
        clerk_row = {"id": key, "sku": "REST-1", "name": "Hex bolt M8", "quantity": 5}  # no unit_cost
        assert ws.recv(FRAME_TIMEOUT) == {"type": "subscription", "event": "create", "data": [clerk_row], "uid": "s1"}
        updated = host.server.request("PATCH", f"/items/stock_items/{key}", {"quantity": 7}, token=boss)
        assert updated.status == 200, updated.body
        assert ws.recv(FRAME_TIMEOUT) == {
            "type": "subscription",
            "event": "update",
            "data": [{**clerk_row, "quantity": 7}],
            "uid": "s1",
        }


def test_the_graphql_socket_hears_of_writes_to_the_hosts_model(host: Host) -> None:
    boss = token(host, BOSS)
    created = host.server.request("POST", "/items/stock_items", {"sku": "GQL-1", "name": "Washer"}, token=boss)
    assert created.status == 200, created.body
    key = str(created.body["data"]["id"])
    with socket(host, "/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        # connection_init logs in with the user model's USERNAME_FIELD too.
        credentials = {"username": CLERK["username"], "password": CLERK["password"]}
        assert ws.request({"type": "connection_init", "payload": credentials}) == {"type": "connection_ack"}
        # unit_cost is not the clerk's to read: refused exactly as an unknown field (no field oracle).
        hidden = "subscription { stock_items_mutated(event: update) { key event data { id sku unit_cost } } }"
        message = "Cannot query field 'unit_cost' on type 'stock_items'."
        location = {"line": 1, "column": hidden.index("unit_cost") + 1}
        assert ws.request({"id": "0", "type": "subscribe", "payload": {"query": hidden}}) == {
            "id": "0",
            "type": "error",
            "payload": [{"message": message, "locations": [location]}],
        }
        query = "subscription { stock_items_mutated(event: update) { key event data { id sku quantity } } }"
        ws.send({"id": "1", "type": "subscribe", "payload": {"query": query}})
        quantities = count(1)

        def write() -> None:
            # A write that changes no value sends nothing: each retry writes a new quantity.
            patch = {"quantity": next(quantities)}
            response = host.server.request("PATCH", f"/items/stock_items/{key}", patch, token=boss)
            assert response.status == 200, response.body

        # Retried until the subscription has joined the fan-out (nothing tells the client when it has).
        frame = write_until_seen(write, ws.recv_or_none)
        quantity = frame["payload"]["data"]["stock_items_mutated"]["data"]["quantity"]
        assert frame == {
            "id": "1",
            "type": "next",
            "payload": {
                "data": {
                    "stock_items_mutated": {
                        "key": key,
                        "event": "update",
                        "data": {"id": key, "sku": "GQL-1", "quantity": quantity},
                    }
                }
            },
        }


def test_the_logs_socket_streams_the_hosts_http_requests(host: Host) -> None:
    with socket(host, "/websockets/logs") as ws:
        assert ws.request({"type": "auth", "access_token": token(host, BOSS)}) == {"type": "auth", "status": "ok"}
        assert ws.request({"type": "subscribe", "log_level": "info"}) == {
            "type": "logs",
            "event": "subscribe",
            "log_level": "info",
        }
        assert host.server.request("GET", "/erp/ping").status == 200
        deadline = time.monotonic() + FRAME_TIMEOUT
        while not (line := ws.recv(max(deadline - time.monotonic(), 0.01)))["data"]["msg"].startswith("GET /erp/ping"):
            assert line["type"] == "logs"
        assert line["data"]["msg"].startswith("GET /erp/ping 200 ")
