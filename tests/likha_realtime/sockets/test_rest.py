"""The REST consumer over channels' WebsocketCommunicator: auth in the three modes, errors, heartbeat, limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from erp_demo.models import User
from likha_realtime.sockets.rest import RestConsumer
from realtime_auth import tokens
from tests.likha_realtime.support import closed_with, connected_socket, realtime
from tests.support import wait_until_async

pytestmark = pytest.mark.django_db(transaction=True)

MODES = ["public", "handshake", "strict"]


class ShiftedClockConsumer(RestConsumer):
    """A REST consumer whose wall clock runs ``offset`` seconds ahead, so expiry happens without sleeping."""

    offset: ClassVar[float] = 0.0
    timer = staticmethod(lambda: time.time() + ShiftedClockConsumer.offset)


@pytest.fixture
def admin() -> User:
    return User.objects.create_superuser("admin@example.com", "admin-password")


@pytest.fixture
def editor() -> User:
    return User.objects.create_user("editor@example.com", "editor-password")


@pytest.fixture
def pair(editor: User) -> tokens.TokenPair:
    return tokens.issue_pair(editor)


async def open_socket(path: str = "/websockets", consumer: Any = RestConsumer) -> WebsocketCommunicator:
    return await connected_socket(path, consumer)


@pytest.fixture
async def public_socket() -> AsyncIterator[WebsocketCommunicator]:
    with realtime(REST_AUTH="public"):
        comm = await open_socket()
        yield comm
        await comm.disconnect()


def auth_error(code: str, message: str, **uid: Any) -> dict[str, Any]:
    return {"type": "auth", "status": "error", "error": {"code": code, "message": message}, **uid}


def server_error(message: str, **uid: Any) -> dict[str, Any]:
    return {"type": "server", "status": "error", "error": {"code": "INVALID_PAYLOAD", "message": message}, **uid}


# -- connect --------------------------------------------------------------------------------------------------


async def test_strict_mode_rejects_a_missing_token_before_accept() -> None:
    with realtime(REST_AUTH="strict"):
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets")
        connected, _ = await comm.connect()
        assert connected is False


@pytest.mark.parametrize("mode", MODES)
async def test_an_invalid_url_token_is_rejected_before_accept_in_every_mode(mode: str) -> None:
    with realtime(REST_AUTH=mode):
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), "/websockets?access_token=garbage")
        connected, _ = await comm.connect()
        assert connected is False


@pytest.mark.parametrize("mode", MODES)
async def test_a_valid_url_token_authenticates_in_every_mode(mode: str, pair: tokens.TokenPair) -> None:
    with realtime(REST_AUTH=mode):
        comm = await open_socket(f"/websockets?access_token={pair.access}")
        await comm.send_json_to({"type": "ping", "uid": "p"})
        assert await comm.receive_json_from() == {"type": "pong", "uid": "p"}
        await comm.disconnect()


async def test_a_refresh_token_on_the_url_is_not_an_access_token(pair: tokens.TokenPair) -> None:
    with realtime(REST_AUTH="public"):
        comm = WebsocketCommunicator(RestConsumer.as_asgi(), f"/websockets?access_token={pair.refresh}")
        connected, _ = await comm.connect()
        assert connected is False


async def test_public_mode_answers_pings_without_auth(public_socket: WebsocketCommunicator) -> None:
    await public_socket.send_json_to({"type": "ping"})
    assert await public_socket.receive_json_from() == {"type": "pong"}


# -- credentials ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["public", "handshake"])
async def test_email_and_password_login_replies_with_a_rotatable_refresh_token(mode: str, editor: User) -> None:
    with realtime(REST_AUTH=mode):
        comm = await open_socket()
        await comm.send_json_to(
            {"type": "auth", "email": "editor@example.com", "password": "editor-password", "uid": 1}
        )
        reply = await comm.receive_json_from()
        assert list(reply) == ["type", "status", "refresh_token", "uid"]
        assert (reply["type"], reply["status"], reply["uid"]) == ("auth", "ok", 1)
        user, _ = await database_sync_to_async(tokens.rotate)(reply["refresh_token"])
        assert user == editor
        await comm.disconnect()


async def test_refresh_token_login_rotates_and_the_old_token_is_spent(pair: tokens.TokenPair) -> None:
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket()
        await comm.send_json_to({"type": "auth", "refresh_token": pair.refresh})
        reply = await comm.receive_json_from()
        assert reply["status"] == "ok" and reply["refresh_token"] != pair.refresh
        await comm.disconnect()
        with pytest.raises(tokens.InvalidToken):
            await database_sync_to_async(tokens.rotate)(pair.refresh)


async def test_access_token_login_replies_ok_without_refresh_token(pair: tokens.TokenPair) -> None:
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket()
        await comm.send_json_to({"type": "auth", "access_token": pair.access, "uid": "x"})
        assert await comm.receive_json_from() == {"type": "auth", "status": "ok", "uid": "x"}
        await comm.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "auth"},
        {"type": "auth", "access_token": ""},
        {"type": "auth", "access_token": 5},
        {"type": "auth", "email": "editor@example.com"},
        {"type": "auth", "email": "editor@example.com", "password": "wrong"},
        {"type": "auth", "access_token": "x", "refresh_token": "y"},
        {"type": "auth", "refresh_token": "not-a-token"},
    ],
    ids=["no-credentials", "empty", "not-a-string", "no-password", "wrong-password", "two-kinds", "bad-refresh"],
)
async def test_bad_credentials_fail_the_handshake_with_uid_echo_and_close_4401(
    frame: dict[str, Any], editor: User
) -> None:
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket()
        await comm.send_json_to({**frame, "uid": "h"})
        assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication handshake failed.", uid="h")
        assert await closed_with(comm) == (4401, "Unauthorized")


async def test_an_inactive_user_cannot_log_in(editor: User) -> None:
    editor.is_active = False
    await database_sync_to_async(editor.save)()
    with realtime(REST_AUTH="public"):
        comm = await open_socket()
        await comm.send_json_to({"type": "auth", "email": "editor@example.com", "password": "editor-password"})
        assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication failed.")
        await comm.disconnect()


@pytest.mark.parametrize(
    ("raw", "uid"),
    [
        ("not json", {}),
        ("[1,2]", {}),
        ('{"uid":"u"}', {"uid": "u"}),
        ('{"type":"nope","uid":9}', {"uid": 9}),
        ('{"type":"ping","uid":"p"}', {"uid": "p"}),
    ],
)
async def test_anything_but_auth_first_fails_the_handshake(raw: str, uid: dict[str, Any]) -> None:
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket()
        await comm.send_to(text_data=raw)
        assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication handshake failed.", **uid)
        assert await closed_with(comm) == (4401, "Unauthorized")


@pytest.mark.parametrize("mode", ["handshake", "strict"])
async def test_a_failed_reauth_closes_4401(mode: str, pair: tokens.TokenPair) -> None:
    with realtime(REST_AUTH=mode):
        comm = await open_socket(f"/websockets?access_token={pair.access}")
        await comm.send_json_to({"type": "auth", "access_token": "bad", "uid": "again"})
        assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication failed.", uid="again")
        assert await closed_with(comm) == (4401, "Unauthorized")


async def test_reauth_switches_the_user_on_the_live_connection(admin: User, pair: tokens.TokenPair) -> None:
    seen: list[Any] = []

    class Recording(RestConsumer):
        async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
            seen.append((previous, self.user))

    with realtime(REST_AUTH="handshake"):
        comm = await open_socket(f"/websockets?access_token={pair.access}", Recording)
        await comm.send_json_to({"type": "auth", "email": "admin@example.com", "password": "admin-password"})
        assert (await comm.receive_json_from())["status"] == "ok"
        await comm.disconnect()
    editor = await database_sync_to_async(User.objects.get)(email="editor@example.com")
    # The URL token is a login too (public role -> editor), then the auth frame switches to the admin.
    assert [(getattr(before, "pk", None), after) for before, after in seen] == [(None, editor), (editor.pk, admin)]


async def test_a_failed_reauth_in_public_mode_drops_to_the_public_role(pair: tokens.TokenPair) -> None:
    roles: list[bool] = []

    class Recording(RestConsumer):
        async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
            roles.append(self.user.is_authenticated)

    with realtime(REST_AUTH="public"):
        comm = await open_socket(f"/websockets?access_token={pair.access}", Recording)
        await comm.send_json_to({"type": "auth", "access_token": "bad"})
        assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication failed.")
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from() == {"type": "pong"}
        await comm.disconnect()
    assert roles == [True, False]  # the URL token's login, then the failed re-auth


# -- expiry ---------------------------------------------------------------------------------------------------


@pytest.fixture
def clock_ahead() -> Any:
    ShiftedClockConsumer.offset = 3600.0  # every 15-minute token is long expired on this clock
    yield
    ShiftedClockConsumer.offset = 0.0


@pytest.mark.parametrize("mode", ["handshake", "strict"])
async def test_expiry_without_reauth_times_out_and_closes_4401(
    mode: str, pair: tokens.TokenPair, clock_ahead: Any
) -> None:
    with realtime(REST_AUTH=mode, REST_AUTH_TIMEOUT=0.2):
        comm = await open_socket(f"/websockets?access_token={pair.access}", ShiftedClockConsumer)
        assert await comm.receive_json_from() == auth_error("TOKEN_EXPIRED", "Token expired.")
        assert await comm.receive_json_from() == auth_error("AUTH_TIMEOUT", "Authentication timed out.")
        assert await closed_with(comm) == (4401, "Unauthorized")


async def test_expiry_in_public_mode_times_out_and_stays_open(pair: tokens.TokenPair, clock_ahead: Any) -> None:
    with realtime(REST_AUTH="public", REST_AUTH_TIMEOUT=0.2):
        comm = await open_socket(f"/websockets?access_token={pair.access}", ShiftedClockConsumer)
        assert await comm.receive_json_from() == auth_error("TOKEN_EXPIRED", "Token expired.")
        assert await comm.receive_json_from() == auth_error("AUTH_TIMEOUT", "Authentication timed out.")
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from() == {"type": "pong"}
        await comm.disconnect()


async def test_reauth_after_expiry_restores_the_session(editor: User, clock_ahead: Any) -> None:
    pair = await database_sync_to_async(tokens.issue_pair)(editor)
    with realtime(REST_AUTH="handshake", REST_AUTH_TIMEOUT=5):
        comm = await open_socket(f"/websockets?access_token={pair.access}", ShiftedClockConsumer)
        assert (await comm.receive_json_from())["error"]["code"] == "TOKEN_EXPIRED"
        ShiftedClockConsumer.offset = 0.0
        await comm.send_json_to({"type": "auth", "refresh_token": pair.refresh, "uid": "r"})
        reply = await comm.receive_json_from()
        assert (reply["status"], reply["uid"]) == ("ok", "r")
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from() == {"type": "pong"}
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()


# -- revocation -----------------------------------------------------------------------------------------------


async def test_logout_revokes_sockets_of_that_session_only(editor: User) -> None:
    first = await database_sync_to_async(tokens.issue_pair)(editor)
    second = await database_sync_to_async(tokens.issue_pair)(editor)
    with realtime(REST_AUTH="handshake"):
        one = await open_socket(f"/websockets?access_token={first.access}")
        two = await open_socket(f"/websockets?access_token={second.access}")
        from django.test import Client

        response = await database_sync_to_async(Client().post)(
            "/auth/logout", {"refresh_token": first.refresh}, content_type="application/json"
        )
        assert response.status_code == 204
        assert await one.receive_json_from() == auth_error("TOKEN_EXPIRED", "Token expired.")
        assert await two.receive_nothing(timeout=0.3)
        await one.disconnect()
        await two.disconnect()


@pytest.mark.parametrize("change", ["password", "deactivate"])
async def test_changed_credentials_revoke_every_socket_of_the_user(change: str, editor: User) -> None:
    pair = await database_sync_to_async(tokens.issue_pair)(editor)
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket(f"/websockets?access_token={pair.access}")
        if change == "password":
            editor.set_password("a-new-password")
        else:
            editor.is_active = False
        await database_sync_to_async(editor.save)()
        assert await comm.receive_json_from() == auth_error("TOKEN_EXPIRED", "Token expired.")
        await comm.disconnect()
    with pytest.raises(tokens.InvalidToken):
        await database_sync_to_async(tokens.rotate)(pair.refresh)


# -- errors, heartbeat, limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{nope", server_error("Unable to parse the incoming message.")),
        ("[1]", server_error("Invalid message: expected a JSON object, received an array.")),
        ('"text"', server_error("Invalid message: expected a JSON object, received a string.")),
        ('{"uid":"u1"}', server_error('Invalid message: "type" is required.', uid="u1")),
        ('{"type":5,"uid":2}', server_error('Invalid message: "type" must be a string.', uid=2)),
        ('{"type":"launch","uid":"u3"}', server_error('Invalid message: unknown type "launch".', uid="u3")),
        (
            '{"type":"ping","uid":{"a":1}}',
            server_error('Invalid message: "uid" must be a string (up to 256 characters) or a finite number.'),
        ),
    ],
)
async def test_malformed_frames_get_the_error_envelope_and_the_socket_stays_open(
    public_socket: WebsocketCommunicator, raw: str, expected: dict[str, Any]
) -> None:
    await public_socket.send_to(text_data=raw)
    assert await public_socket.receive_json_from() == expected
    await public_socket.send_json_to({"type": "ping"})
    assert await public_socket.receive_json_from() == {"type": "pong"}


async def test_binary_frames_get_an_error(public_socket: WebsocketCommunicator) -> None:
    await public_socket.send_to(bytes_data=b'{"type":"ping"}')
    assert await public_socket.receive_json_from() == server_error(
        "Binary frames are not supported; send JSON text frames."
    )


async def test_a_frame_over_the_size_limit_closes_4413() -> None:
    with realtime(REST_AUTH="public", MESSAGE_MAX_BYTES=1024):
        comm = await open_socket()
        await comm.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 2000}))
        assert await comm.receive_json_from() == server_error("Message too large: over 1024 bytes.")
        assert await closed_with(comm) == (4413, "Message Too Large")


async def test_the_server_pings_and_closes_a_silent_client_4408() -> None:
    with realtime(REST_AUTH="public", HEARTBEAT_PERIOD=0.1):
        comm = await open_socket()
        assert await comm.receive_json_from() == {"type": "ping"}
        assert await closed_with(comm) == (4408, "Heartbeat Timeout")


async def test_any_client_message_keeps_the_heartbeat_alive() -> None:
    with realtime(REST_AUTH="public", HEARTBEAT_PERIOD=0.15):
        comm = await open_socket()
        for _ in range(3):
            assert await comm.receive_json_from() == {"type": "ping"}
            await comm.send_json_to({"type": "pong"})
        await comm.disconnect()


async def test_the_connection_limit_closes_extra_sockets_4429() -> None:
    # Sockets that other tests left closed server-side were never told websocket.disconnect (daphne does
    # tell them; the communicator does not), so start from an empty count.
    RestConsumer.open_connections.clear()
    with realtime(REST_AUTH="public", REST_CONN_LIMIT=1):
        first = await open_socket()
        extra = await open_socket()
        assert await extra.receive_json_from() == {
            "type": "server",
            "status": "error",
            "error": {"code": "REQUESTS_EXCEEDED", "message": "Too many connections."},
        }
        assert await closed_with(extra) == (4429, "Too Many Requests")
        await first.disconnect()
        again = await open_socket()
        await again.send_json_to({"type": "ping"})
        assert await again.receive_json_from() == {"type": "pong"}
        await again.disconnect()


# -- races, limits and hostile input --------------------------------------------------------------------------


class FrozenClockConsumer(RestConsumer):
    """A REST consumer on a clock that stands still until a test moves it; it remembers its instances.

    Its deadline timer still fires (after ``REST_AUTH_TIMEOUT`` real seconds), but a deadline counts as passed only
    once the test has moved the clock past it: before that, a firing re-arms the timer and does nothing else.
    """

    now: ClassVar[float] = 0.0
    timer = staticmethod(lambda: FrozenClockConsumer.now)
    instances: ClassVar[list[FrozenClockConsumer]] = []

    async def connect(self) -> None:
        type(self).instances.append(self)
        await super().connect()


@pytest.fixture
def frozen_clock() -> Iterator[type[FrozenClockConsumer]]:
    FrozenClockConsumer.now = time.time()
    FrozenClockConsumer.instances = []
    yield FrozenClockConsumer
    FrozenClockConsumer.instances = []


async def test_an_auth_in_flight_when_the_handshake_deadline_passes_wins(
    pair: tokens.TokenPair, monkeypatch: pytest.MonkeyPatch, frozen_clock: type[FrozenClockConsumer]
) -> None:
    from realtime_auth import mixin

    checking, gate = asyncio.Event(), asyncio.Event()
    real = mixin.authenticate

    async def slow_authenticate(credentials: Any) -> Any:
        checking.set()
        await gate.wait()
        return await real(credentials)

    monkeypatch.setattr(mixin, "authenticate", slow_authenticate)
    with realtime(REST_AUTH="handshake", REST_AUTH_TIMEOUT=0.05):
        comm = await open_socket(consumer=frozen_clock)
        (consumer,) = frozen_clock.instances
        await comm.send_json_to({"type": "auth", "access_token": pair.access})
        await asyncio.wait_for(checking.wait(), timeout=5)  # the credentials are being checked (under the auth lock)
        frozen_clock.now += 1  # the handshake deadline (0.05 s after the connect) has passed, not the token's exp...

        def deadline_waiting() -> bool:
            # The mixin's task for its deadline timer (a private name, only read). Earlier firings ran and finished
            # before the check took the auth lock; one still pending fired during the check and waits for that lock.
            task = consumer._auth_task
            return task is not None and not task.done()

        # ...and the deadline timer fires while the check is still in flight.
        await wait_until_async(deadline_waiting, message="the deadline timer never fired during the check")
        gate.set()
        assert await comm.receive_json_from() == {"type": "auth", "status": "ok"}
        assert await comm.receive_nothing(timeout=0.3)
        await comm.send_json_to({"type": "ping"})
        assert await comm.receive_json_from() == {"type": "pong"}
        await comm.disconnect()


async def test_nothing_is_processed_after_the_socket_closed() -> None:
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket()
        await comm.send_to(text_data="not json")
        await comm.send_json_to({"type": "ping", "uid": "late"})
        assert (await comm.receive_json_from())["error"]["code"] == "AUTH_FAILED"
        assert await closed_with(comm) == (4401, "Unauthorized")
        assert await comm.receive_nothing(timeout=0.3)


async def test_repeated_failed_logins_in_public_mode_close_4429(editor: User) -> None:
    with realtime(REST_AUTH="public"):
        comm = await open_socket()
        for attempt in range(4):
            await comm.send_json_to({"type": "auth", "email": "editor@example.com", "password": f"guess-{attempt}"})
            assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication failed.")
        await comm.send_json_to({"type": "auth", "email": "editor@example.com", "password": "guess-5", "uid": 5})
        assert await comm.receive_json_from() == {
            "type": "auth",
            "status": "error",
            "error": {"code": "REQUESTS_EXCEEDED", "message": "Too many failed authentication attempts."},
            "uid": 5,
        }
        assert await closed_with(comm) == (4429, "Too Many Requests")


@pytest.mark.parametrize(
    "raw", ['{"type":"ping","uid":NaN}', '{"type":"ping","uid":1e999}', '{"type":"ping","uid":-Infinity}']
)
async def test_non_finite_numbers_are_not_json(public_socket: WebsocketCommunicator, raw: str) -> None:
    await public_socket.send_to(text_data=raw)
    assert await public_socket.receive_json_from() == server_error("Unable to parse the incoming message.")


@pytest.mark.parametrize("field", ["access_token", "refresh_token", "email", "password"])
async def test_a_lone_surrogate_in_credentials_fails_the_handshake_cleanly(field: str, editor: User) -> None:
    frame = {"type": "auth", "uid": "s", field: "x"}
    if field in ("email", "password"):
        frame = {"type": "auth", "uid": "s", "email": "editor@example.com", "password": "editor-password", field: "x"}
    raw = json.dumps(frame).replace('"x"', '"\\ud800"')
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket()
        await comm.send_to(text_data=raw)
        assert await comm.receive_json_from() == auth_error("AUTH_FAILED", "Authentication handshake failed.", uid="s")
        assert await closed_with(comm) == (4401, "Unauthorized")


async def test_the_renewed_session_has_no_lingering_reauth_deadline(editor: User, clock_ahead: Any) -> None:
    pair = await database_sync_to_async(tokens.issue_pair)(editor)
    with realtime(REST_AUTH="handshake", REST_AUTH_TIMEOUT=0.3):
        comm = await open_socket(f"/websockets?access_token={pair.access}", ShiftedClockConsumer)
        assert (await comm.receive_json_from())["error"]["code"] == "TOKEN_EXPIRED"
        ShiftedClockConsumer.offset = 0.0
        await comm.send_json_to({"type": "auth", "refresh_token": pair.refresh})
        assert (await comm.receive_json_from())["status"] == "ok"
        assert await comm.receive_nothing(timeout=0.6)  # twice the window: no AUTH_TIMEOUT, no close
        await comm.disconnect()


async def test_revocation_spares_other_sessions_and_other_users(editor: User, admin: User) -> None:
    mine = await database_sync_to_async(tokens.issue_pair)(editor)
    other_session = await database_sync_to_async(tokens.issue_pair)(editor)
    other_user = await database_sync_to_async(tokens.issue_pair)(admin)
    with realtime(REST_AUTH="handshake"):
        sockets = [await open_socket(f"/websockets?access_token={p.access}") for p in (mine, other_session, other_user)]
        await database_sync_to_async(tokens.revoke)(mine.refresh)
        from realtime_auth.revocation import end_session

        await database_sync_to_async(end_session)(editor.pk, mine.session_id)
        assert await sockets[0].receive_json_from() == auth_error("TOKEN_EXPIRED", "Token expired.")
        assert await sockets[1].receive_nothing(timeout=0.3)
        assert await sockets[2].receive_nothing(timeout=0.1)
        for comm in sockets:
            await comm.disconnect()


async def test_deleting_the_user_ends_its_sockets(editor: User) -> None:
    pair = await database_sync_to_async(tokens.issue_pair)(editor)
    with realtime(REST_AUTH="handshake"):
        comm = await open_socket(f"/websockets?access_token={pair.access}")
        await database_sync_to_async(editor.delete)()
        assert await comm.receive_json_from() == auth_error("TOKEN_EXPIRED", "Token expired.")
        await comm.disconnect()


async def test_new_group_rights_reach_the_open_socket(editor: User) -> None:
    from django.contrib.auth.models import Group, Permission

    seen: list[bool] = []

    class Recording(RestConsumer):
        async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
            await super().on_identity_changed(previous, rights_changed=rights_changed)
            if previous.is_authenticated:  # not the URL token's login: a change of the logged-in user's rights
                seen.append(await database_sync_to_async(self.user.has_perm)("erp_demo.delete_product"))

    pair = await database_sync_to_async(tokens.issue_pair)(editor)

    def grant() -> None:
        group = Group.objects.create(name="Deleters")
        group.permissions.add(Permission.objects.get(codename="delete_product"))
        editor.groups.add(group)

    with realtime(REST_AUTH="handshake"):
        comm = await open_socket(f"/websockets?access_token={pair.access}", Recording)
        await database_sync_to_async(grant)()
        await wait_until_async(lambda: seen, message="the new rights never reached the socket")  # via the layer
        await comm.disconnect()
    assert seen == [True]
