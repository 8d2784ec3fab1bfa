"""One login path: the URL token, the ``auth`` frame and GraphQL's ``connection_init`` all run ``authorize()``
before an identity counts; the logs socket's admin rule holds on each, and no log line outlives it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from likha_realtime.graphql.schema import get_schema
from likha_realtime.logs import handler as handler_module
from likha_realtime.logs.handler import LogStreamHandler
from likha_realtime.sockets.graphql import GraphQLConsumer
from likha_realtime.sockets.logs import LogsConsumer
from likha_realtime.sockets.rest import RestConsumer
from realtime_auth import mixin
from realtime_auth.errors import AuthError
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode, RealtimeError

pytestmark = pytest.mark.django_db(transaction=True)

EDITOR = {"email": "editor@example.com", "password": "editor-password"}
ADMIN = {"email": "admin@example.com", "password": "admin-password"}


class NotHere(AuthError):
    default_message = "Not on this socket."
    close_code = CloseCode.FORBIDDEN


def realtime(**values: Any) -> override_settings:
    return override_settings(LIKHA_REALTIME={**settings.LIKHA_REALTIME, "HEARTBEAT_ENABLED": False, **values})


def refusing(consumer: type[Any], calls: list[str]) -> type[Any]:
    """``consumer`` whose ``authorize()`` records each identity it is asked about and refuses the editor."""

    class Refusing(consumer):  # type: ignore[misc, valid-type]  # a test double of whichever socket class
        async def authorize(self, identity: Identity) -> RealtimeError | None:
            calls.append(identity.user.email)
            return NotHere() if identity.user.email == EDITOR["email"] else await super().authorize(identity)

    return Refusing


async def outputs_until_close(comm: WebsocketCommunicator) -> list[dict[str, Any]]:
    seen = []
    while True:
        output = await comm.receive_output(timeout=3)
        seen.append(json.loads(output["text"]) if output["type"] == "websocket.send" else output)
        if output["type"] == "websocket.close":
            return seen


NOT_HERE = {"type": "auth", "status": "error", "error": {"code": "AUTH_FAILED", "message": "Not on this socket."}}
CLOSED_4403 = {"type": "websocket.close", "code": 4403, "reason": "Forbidden"}


# -- the REST socket: URL token and auth frame --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["public", "handshake", "strict"])
async def test_a_url_token_goes_through_authorize(mode: str, roles: Any) -> None:
    calls: list[str] = []
    with realtime(REST_AUTH=mode):
        comm = WebsocketCommunicator(
            refusing(RestConsumer, calls).as_asgi(), f"/websockets?access_token={roles.editor}"
        )
        connected, _ = await comm.connect()
        assert connected  # accepted, so the client learns why
        assert await outputs_until_close(comm) == [NOT_HERE, CLOSED_4403]
    assert calls == ["editor@example.com"]


@pytest.mark.parametrize("mode", ["public", "handshake"])
async def test_an_auth_frame_goes_through_authorize(mode: str, roles: Any) -> None:
    calls: list[str] = []
    with realtime(REST_AUTH=mode):
        comm = WebsocketCommunicator(refusing(RestConsumer, calls).as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", **ADMIN, "uid": "a"})
        reply = await comm.receive_json_from(timeout=3)
        assert (reply["status"], reply["uid"]) == ("ok", "a")  # the admin is let in
        await comm.send_json_to({"type": "auth", **EDITOR, "uid": "e"})
        assert await outputs_until_close(comm) == [{**NOT_HERE, "uid": "e"}, CLOSED_4403]
    assert calls == ["admin@example.com", "editor@example.com"]


async def test_a_refused_identity_never_becomes_the_user(roles: Any) -> None:
    users: list[Any] = []

    class Watching(refusing(RestConsumer, [])):  # type: ignore[misc]  # built by refusing()
        async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
            users.append(self.user)
            await super().on_identity_changed(previous, rights_changed=rights_changed)

    with realtime(REST_AUTH="public"):
        comm = WebsocketCommunicator(Watching.as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", **EDITOR})
        assert await outputs_until_close(comm) == [NOT_HERE, CLOSED_4403]
    assert users == []


# -- the GraphQL socket: URL token and connection_init ------------------------------------------------------------


def graphql_socket(consumer: type[Any], path: str = "/graphql") -> WebsocketCommunicator:
    return WebsocketCommunicator(consumer.as_asgi(schema=get_schema()), path, subprotocols=["graphql-transport-ws"])


@pytest.mark.parametrize("mode", ["public", "handshake", "strict"])
async def test_a_graphql_url_token_goes_through_authorize(mode: str, roles: Any) -> None:
    calls: list[str] = []
    with realtime(GRAPHQL_AUTH=mode):
        comm = graphql_socket(refusing(GraphQLConsumer, calls), f"/graphql?access_token={roles.editor}")
        assert (await comm.connect())[0]
        assert await outputs_until_close(comm) == [CLOSED_4403]  # graphql-ws clients know only close codes
    assert calls == ["editor@example.com"]


@pytest.mark.parametrize("mode", ["public", "handshake"])
async def test_connection_init_goes_through_authorize(mode: str, roles: Any) -> None:
    calls: list[str] = []
    with realtime(GRAPHQL_AUTH=mode):
        allowed = graphql_socket(refusing(GraphQLConsumer, calls))
        assert (await allowed.connect())[0]
        await allowed.send_json_to({"type": "connection_init", "payload": {"access_token": roles.admin}})
        assert await allowed.receive_json_from(timeout=3) == {"type": "connection_ack"}
        await allowed.disconnect()
        refused = graphql_socket(refusing(GraphQLConsumer, calls))
        assert (await refused.connect())[0]
        await refused.send_json_to({"type": "connection_init", "payload": EDITOR})
        assert await outputs_until_close(refused) == [CLOSED_4403]
    assert calls == ["admin@example.com", "editor@example.com"]


# -- the logs socket: its admin rule on every path, and not one line more -----------------------------------------


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A logger feeding only its own stream handler (the app's root handler is set aside for the test)."""
    root = logging.getLogger()
    installed = handler_module._installed
    if installed is not None:
        root.removeHandler(installed)
    handler = LogStreamHandler(node_id="node-login-test")
    logger = logging.getLogger("tests.login_paths")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    handler.close()
    if installed is not None:
        root.addHandler(installed)


UNAUTHORIZED = {"type": "auth", "status": "error", "error": {"code": "AUTH_FAILED", "message": "Unauthorized access."}}


@pytest.mark.parametrize("mode", ["handshake", "strict"])
async def test_the_logs_admin_rule_refuses_an_editors_url_token(mode: str, roles: Any) -> None:
    with realtime(LOGS_AUTH=mode):
        comm = WebsocketCommunicator(LogsConsumer.as_asgi(), f"/websockets/logs?access_token={roles.editor}")
        assert (await comm.connect())[0]
        assert await outputs_until_close(comm) == [UNAUTHORIZED, CLOSED_4403]


def pausing_login(monkeypatch: pytest.MonkeyPatch, logger: logging.Logger, reached: asyncio.Event) -> None:
    """While the next login is being decided, a line is logged and reaches the socket's send path."""
    real = mixin.authenticate

    async def authenticate(credentials: Any) -> Any:
        logger.warning("logged while the login is being decided")
        await asyncio.wait_for(reached.wait(), 3)
        return await real(credentials)

    monkeypatch.setattr(mixin, "authenticate", authenticate)


def watching(reached: asyncio.Event, instances: list[LogsConsumer] | None = None) -> type[LogsConsumer]:
    class Watching(LogsConsumer):
        async def on_open(self) -> None:
            if instances is not None:
                instances.append(self)
            await super().on_open()

        async def send_line(self, text: str) -> None:
            if "being decided" in text:
                reached.set()
            await super().send_line(text)

    return Watching


async def streaming_admin(consumer: type[Any], logger: logging.Logger, roles: Any) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(consumer.as_asgi(), f"/websockets/logs?access_token={roles.admin}")
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "subscribe", "log_level": "info"})
    assert await comm.receive_json_from(timeout=3) == {"type": "logs", "event": "subscribe", "log_level": "info"}
    logger.info("before")
    line = await comm.receive_json_from(timeout=3)
    assert line["data"]["msg"] == "before"
    return comm


async def test_no_log_line_reaches_an_admin_who_logs_in_again_as_a_non_admin(
    roles: Any, app_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached = asyncio.Event()
    with realtime(LOGS_AUTH="handshake"):
        comm = await streaming_admin(watching(reached), app_logger, roles)
        pausing_login(monkeypatch, app_logger, reached)
        await comm.send_json_to({"type": "auth", **EDITOR, "uid": "e"})
        # The line logged while the editor's credentials were checked is not sent: the refusal comes first and last.
        assert await outputs_until_close(comm) == [{**UNAUTHORIZED, "uid": "e"}, CLOSED_4403]


async def test_in_public_mode_an_admin_who_becomes_an_editor_stops_streaming_at_once(
    roles: Any, app_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached = asyncio.Event()
    sockets: list[LogsConsumer] = []
    with realtime(LOGS_AUTH="public"):
        comm = await streaming_admin(watching(reached, sockets), app_logger, roles)
        pausing_login(monkeypatch, app_logger, reached)
        await comm.send_json_to({"type": "auth", **EDITOR, "uid": "e"})
        # The editor logs in (public mode) and the next frame is the reply: the line logged meanwhile is dropped.
        reply = await comm.receive_json_from(timeout=3)
        assert list(reply) == ["type", "status", "refresh_token", "uid"]
        assert (reply["type"], reply["status"], reply["uid"]) == ("auth", "ok", "e")
        await comm.send_json_to({"type": "ping", "uid": "p"})  # handled once the login is complete
        assert await comm.receive_json_from(timeout=3) == {"type": "pong", "uid": "p"}
        (socket,) = sockets
        assert (socket.admin, socket.tap) == (False, None)  # streaming stopped with the switch
        await comm.send_json_to({"type": "subscribe", "log_level": "info", "uid": 2})
        assert (await comm.receive_json_from(timeout=3))["error"]["code"] == "FORBIDDEN"
        await comm.disconnect()


async def test_a_logs_watcher_who_loses_the_permission_is_refused_at_once(
    roles: Any, app_logger: logging.Logger
) -> None:
    from channels.db import database_sync_to_async
    from django.contrib.auth.models import Permission

    from erp_demo.models import User
    from realtime_auth import tokens

    def grant(add: bool) -> str:
        editor = User.objects.get(email=EDITOR["email"])
        permission = Permission.objects.get(content_type__app_label="likha_realtime", codename="view_logs")
        (editor.user_permissions.add if add else editor.user_permissions.remove)(permission)
        return tokens.issue_pair(editor).access

    token = await database_sync_to_async(grant)(True)
    with realtime(LOGS_AUTH="handshake"):
        comm = WebsocketCommunicator(LogsConsumer.as_asgi(), f"/websockets/logs?access_token={token}")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "subscribe", "log_level": "info"})
        assert await comm.receive_json_from(timeout=3) == {"type": "logs", "event": "subscribe", "log_level": "info"}
        await database_sync_to_async(grant)(False)  # the rights reload reaches the socket through the channel layer
        assert await outputs_until_close(comm) == [UNAUTHORIZED, CLOSED_4403]


class NotNow(AuthError):
    default_message = "Not now."  # no close code: the socket decides as for failed credentials


async def test_a_refusal_without_a_close_of_its_own_counts_as_failed_credentials(roles: Any) -> None:
    users: list[Any] = []

    class Refusing(RestConsumer):
        async def authorize(self, identity: Identity) -> RealtimeError | None:
            return NotNow() if identity.user.email == EDITOR["email"] else None

        async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
            users.append(getattr(self.user, "email", None))
            await super().on_identity_changed(previous, rights_changed=rights_changed)

    with realtime(REST_AUTH="public"):
        comm = WebsocketCommunicator(Refusing.as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", **ADMIN})
        assert (await comm.receive_json_from(timeout=3))["status"] == "ok"
        await comm.send_json_to({"type": "auth", **EDITOR, "uid": "e"})
        # Public mode: the error, and the public role (not the admin the socket was before), the socket stays open.
        assert await comm.receive_json_from(timeout=3) == {
            "type": "auth",
            "status": "error",
            "error": {"code": "AUTH_FAILED", "message": "Not now."},
            "uid": "e",
        }
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from(timeout=3) == {"type": "pong"}
        await comm.disconnect()
    assert users == ["admin@example.com", None]
    with realtime(REST_AUTH="handshake"):
        comm = WebsocketCommunicator(Refusing.as_asgi(), "/websockets")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", **EDITOR, "uid": "e"})
        assert await outputs_until_close(comm) == [
            {
                "type": "auth",
                "status": "error",
                "error": {"code": "AUTH_FAILED", "message": "Authentication handshake failed."},
                "uid": "e",
            },
            {"type": "websocket.close", "code": 4401, "reason": "Unauthorized"},
        ]


@pytest.mark.parametrize("socket", ["rest", "graphql"])
async def test_a_url_token_refused_without_a_close_leaves_a_working_public_socket(socket: str, roles: Any) -> None:
    class RefusingRest(RestConsumer):
        async def authorize(self, identity: Identity) -> RealtimeError | None:
            return NotNow()

    class RefusingGraphQL(GraphQLConsumer):
        async def authorize(self, identity: Identity) -> RealtimeError | None:
            return NotNow()

    with realtime(REST_AUTH="public", GRAPHQL_AUTH="public"):
        if socket == "rest":
            comm = WebsocketCommunicator(RefusingRest.as_asgi(), f"/websockets?access_token={roles.editor}")
            assert (await comm.connect())[0]
            assert await comm.receive_json_from(timeout=3) == {
                "type": "auth",
                "status": "error",
                "error": {"code": "AUTH_FAILED", "message": "Not now."},
            }
            # Open, with the public role: the public role reads products, not customers.
            await comm.send_json_to({"type": "items", "action": "read", "collection": "products", "uid": 1})
            assert await comm.receive_json_from(timeout=3) == {"type": "items", "data": [], "uid": 1}
            await comm.send_json_to({"type": "items", "action": "read", "collection": "customers", "uid": 2})
            assert (await comm.receive_json_from(timeout=3))["error"]["code"] == "FORBIDDEN"
        else:
            comm = graphql_socket(RefusingGraphQL, f"/graphql?access_token={roles.editor}")
            assert (await comm.connect())[0]
            await comm.send_json_to({"type": "connection_init", "payload": {}})
            assert await comm.receive_json_from(timeout=3) == {"type": "connection_ack"}
            for name, allowed in (("products", True), ("customers", False)):  # the public role, not the editor
                query = f"{{ {name}(limit: 1) {{ id }} }}"
                await comm.send_json_to({"id": name, "type": "subscribe", "payload": {"query": query}})
                reply = await comm.receive_json_from(timeout=3)
                assert (reply["payload"].get("data") == {name: []}) is allowed, reply
                assert await comm.receive_json_from(timeout=3) == {"id": name, "type": "complete"}
        await comm.disconnect()


async def test_a_rights_change_committed_during_a_login_is_not_missed(
    roles: Any, app_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channels.db import database_sync_to_async

    from erp_demo.models import User

    real = mixin.authenticate

    def demote() -> None:
        admin = User.objects.get(email=ADMIN["email"])
        admin.is_superuser = False
        admin.save()

    async def authenticate(credentials: Any) -> Any:
        result = await real(credentials)  # the admin, read as a superuser ...
        await database_sync_to_async(demote)()  # ... demoted (committed) before the socket listens for changes
        return result

    monkeypatch.setattr(mixin, "authenticate", authenticate)
    with realtime(LOGS_AUTH="handshake"):
        comm = WebsocketCommunicator(LogsConsumer.as_asgi(), "/websockets/logs")
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "auth", **ADMIN, "uid": "a"})
        assert await outputs_until_close(comm) == [{**UNAUTHORIZED, "uid": "a"}, CLOSED_4403]
