"""``RealtimeAuthMixin`` on its own: a minimal consumer built from channels' ``AsyncWebsocketConsumer`` and the mixin
alone (no likha_realtime), driven through ``WebsocketCommunicator`` with an injected clock.

Every way in (URL token, ``auth`` frame, ``connection_init`` credentials) runs ``authorize()`` once with the identity
before it counts; a refused identity never becomes the user; deadlines follow the injected clock, not wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer
from channels.testing import WebsocketCommunicator

from erp_demo.models import User
from realtime_auth import tokens
from realtime_auth.errors import AuthError
from realtime_auth.mixin import RealtimeAuthMixin
from realtime_auth.revocation import REVOKE_MESSAGE, broadcast, session_group, user_group
from realtime_auth.session import Identity
from realtime_auth.wire import CloseCode, RealtimeError
from tests.realtime_auth.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, EDITOR_EMAIL, EDITOR_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

MODES = ["public", "handshake", "strict"]
BOUND = 3.0  # seconds any wait may take before the test fails


class Clock:
    """The consumer's wall clock: it stands still until a test moves it, and counts how often it is read."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.reads = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        self.reads += 1
        for waiter in [w for w in self._waiters if w[0] <= self.reads]:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(None)
        return self.now

    async def read(self, times: int) -> None:
        """Wait until the clock has been read ``times`` more times (the consumer's timer fired and re-armed)."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.reads + times, future))
        await asyncio.wait_for(future, BOUND)


class Refused(AuthError):
    default_message = "Not on this socket."
    close_code = CloseCode.FORBIDDEN


class RefusedQuietly(AuthError):
    default_message = "Not with these rights."  # no close code: the socket stays open


@dataclass(frozen=True)
class Asked:
    """One ``authorize()`` call: the identity, and who the connection was while it was asked."""

    user: str | None
    expires_at: float | None
    session_id: str | None
    user_meanwhile: str | None
    scope_user_meanwhile: str | None


def email(user: Any) -> str | None:
    return user.email if user is not None and user.is_authenticated else None


class MiniConsumer(RealtimeAuthMixin, AsyncWebsocketConsumer):
    """The smallest socket on the mixin: plain JSON, ``whoami`` and ``connection_init`` besides auth."""

    socket = "mini"
    mode: ClassVar[str] = "handshake"
    timeout: ClassVar[float] = 10.0
    refusal: ClassVar[Callable[[Identity], RealtimeError | None] | None] = None
    asked: ClassVar[list[Asked]]
    changes: ClassVar[asyncio.Queue[tuple[str | None, str | None]]]

    def auth_policy(self) -> tuple[str, float]:
        return self.mode, self.timeout

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame))

    async def close_with(self, code: CloseCode) -> None:
        await self.close(code=int(code), reason=code.reason)

    async def authorize(self, identity: Identity) -> RealtimeError | None:
        type(self).asked.append(
            Asked(
                email(identity.user),
                identity.expires_at,
                identity.session_id,
                email(self.user),
                email(self.scope.get("user")),
            )
        )
        refusal = type(self).refusal
        return refusal(identity) if refusal is not None else None

    async def on_identity_changed(self, previous: Any, *, rights_changed: bool = False) -> None:
        self.changes.put_nowait((email(previous), email(self.user)))

    async def connect(self) -> None:
        accepted, identity = await self.auth_url_token()
        if not accepted:
            return
        await self.accept()
        await self.auth_start(identity)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            frame = None
        if frame is not None and frame.get("type") == "connection_init":  # GraphQL's way in, before any auth
            if await self.auth_credentials(frame.get("payload") or {}):
                await self.send_frame({"type": "connection_ack"})
            else:
                await self.close_with(CloseCode.FORBIDDEN)  # the caller rejects, as strawberry's consumer does
            return
        if await self.authenticate_frame(frame) or frame is None:
            return
        if frame.get("type") == "whoami":
            superuser = bool(getattr(self.user, "is_superuser", False))
            await self.send_frame(
                {"type": "whoami", "user": email(self.user), "scope": email(self.scope["user"]), "superuser": superuser}
            )

    async def disconnect(self, code: int) -> None:
        await self.auth_disconnect()


def consumer(
    mode: str = "handshake",
    timeout: float = 10.0,
    clock: Callable[[], float] = time.time,
    refusal: Callable[[Identity], RealtimeError | None] | None = None,
) -> type[MiniConsumer]:
    """A fresh consumer class per test: its own policy, clock, refusal and records."""
    attributes = {"mode": mode, "timeout": timeout, "timer": clock, "asked": [], "changes": asyncio.Queue()}
    if refusal is not None:
        attributes["refusal"] = staticmethod(refusal)
    return type("Mini", (MiniConsumer,), attributes)


def refuse(error: type[RealtimeError] = Refused) -> Callable[[Identity], RealtimeError]:
    return lambda identity: error()


@pytest.fixture(autouse=True)
def _clean_layer(layer: InMemoryChannelLayer) -> None:
    """Every test starts on an empty in-memory channel layer (the fixture flushes it)."""


@pytest.fixture
def pair(editor: User) -> tokens.TokenPair:
    return tokens.issue_pair(editor)


@pytest.fixture
async def sockets() -> AsyncIterator[list[WebsocketCommunicator]]:
    """Communicators opened by the test, disconnected at its end (timers cancelled, consumers stopped)."""
    opened: list[WebsocketCommunicator] = []
    yield opened
    for comm in opened:
        if not comm.future.done():  # a failed receive has already cancelled the application
            await comm.disconnect(timeout=BOUND)


async def connect(
    sockets: list[WebsocketCommunicator], app: type[MiniConsumer], path: str = "/mini"
) -> tuple[WebsocketCommunicator, bool]:
    comm = WebsocketCommunicator(app.as_asgi(), path)
    sockets.append(comm)
    accepted, _ = await comm.connect(timeout=BOUND)
    return comm, accepted


async def opened(sockets: list[WebsocketCommunicator], app: type[MiniConsumer], path: str = "/mini") -> Any:
    comm, accepted = await connect(sockets, app, path)
    assert accepted
    return comm


async def ask(comm: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    await comm.send_json_to(frame)
    return await comm.receive_json_from(timeout=BOUND)


async def whoami(comm: WebsocketCommunicator) -> tuple[str | None, str | None]:
    reply = await ask(comm, {"type": "whoami"})
    return reply["user"], reply["scope"]


async def closed_with(comm: WebsocketCommunicator) -> tuple[int, str | None]:
    output = await comm.receive_output(timeout=BOUND)
    assert output["type"] == "websocket.close", output
    return output["code"], output.get("reason")


def error(code: str, message: str, **uid: Any) -> dict[str, Any]:
    return {"type": "auth", "status": "error", "error": {"code": code, "message": message}, **uid}


def asked_for(pair: tokens.TokenPair, user: str = EDITOR_EMAIL) -> Asked:
    return Asked(user, pair.access_expires_at, pair.session_id, None, None)


async def nothing_sent(comm: WebsocketCommunicator) -> bool:
    return await comm.receive_nothing(timeout=0)


# -- standalone --------------------------------------------------------------------------------------------------


def test_realtime_auth_runs_without_likha_realtime_installed(tmp_path: Path) -> None:
    (tmp_path / "standalone_settings.py").write_text(
        textwrap.dedent(
            """
            SECRET_KEY = "standalone-test-key-of-sufficient-length-0123456789"
            INSTALLED_APPS = [
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "rest_framework_simplejwt.token_blacklist",
                "realtime_auth",
            ]
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
            CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
            USE_TZ = True
            """
        )
    )
    script = textwrap.dedent(
        """
        import sys
        import django
        django.setup()
        from django.core.management import call_command
        import realtime_auth.authentication, realtime_auth.mixin, realtime_auth.urls
        call_command("check", fail_level="ERROR")
        loaded = sorted(name for name in sys.modules if name.split(".")[0] == "likha_realtime")
        print("likha_realtime modules:", loaded)
        sys.exit(1 if loaded else 0)
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "standalone_settings", "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


# -- the URL token ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_url_token_is_authorized_once_then_is_the_user(
    mode: str, pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer(mode)
    comm = await opened(sockets, app, f"/mini?access_token={pair.access}")

    assert await whoami(comm) == (EDITOR_EMAIL, EDITOR_EMAIL)  # no auth frame was sent on connect
    assert app.asked == [asked_for(pair)]
    assert app.changes.get_nowait() == (None, EDITOR_EMAIL)


async def test_a_url_token_refused_by_authorize_sends_the_error_and_closes_with_its_code(
    pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("strict", refusal=refuse())
    comm = await opened(sockets, app, f"/mini?access_token={pair.access}")

    assert await comm.receive_json_from(timeout=BOUND) == error("AUTH_FAILED", "Not on this socket.")
    assert await closed_with(comm) == (4403, "Forbidden")
    assert app.asked == [asked_for(pair)]
    assert app.changes.empty()  # the refused identity was never the user


@pytest.mark.parametrize("path", ["/mini", "/mini?access_token=garbage"])
async def test_strict_mode_refuses_a_missing_or_invalid_url_token_before_accept_without_authorize(
    path: str, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("strict")
    comm, accepted = await connect(sockets, app, path)
    assert accepted is False
    assert app.asked == []
    assert await nothing_sent(comm)


# -- the auth frame ----------------------------------------------------------------------------------------------


def credentials(kind: str, pair: tokens.TokenPair) -> dict[str, str]:
    return {
        "access_token": {"access_token": pair.access},
        "password": {"email": EDITOR_EMAIL, "password": EDITOR_PASSWORD},
        "refresh_token": {"refresh_token": pair.refresh},
    }[kind]


@pytest.mark.parametrize("mode", ["public", "handshake"])
@pytest.mark.parametrize("kind", ["access_token", "password", "refresh_token"])
async def test_an_auth_frame_is_authorized_once_then_is_the_user(
    mode: str, kind: str, pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer(mode)
    comm = await opened(sockets, app)

    reply = await ask(comm, {"type": "auth", **credentials(kind, pair), "uid": "a"})

    if kind == "access_token":
        assert reply == {"type": "auth", "status": "ok", "uid": "a"}
    else:
        assert list(reply) == ["type", "status", "refresh_token", "uid"]
        assert (reply["type"], reply["status"], reply["uid"]) == ("auth", "ok", "a")
        assert reply["refresh_token"] != pair.refresh  # a new refresh token of the session it names
    assert await whoami(comm) == (EDITOR_EMAIL, EDITOR_EMAIL)
    [asked] = app.asked
    assert (asked.user, asked.user_meanwhile, asked.scope_user_meanwhile) == (EDITOR_EMAIL, None, None)
    if kind == "password":
        assert asked.session_id not in (None, pair.session_id)  # a new login session
    else:
        assert asked.session_id == pair.session_id
    assert app.changes.get_nowait() == (None, EDITOR_EMAIL)


async def test_an_auth_frame_refused_by_authorize_sends_the_error_and_closes_with_its_code(
    pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("handshake", refusal=refuse())
    comm = await opened(sockets, app)

    assert await ask(comm, {"type": "auth", "access_token": pair.access, "uid": 7}) == error(
        "AUTH_FAILED", "Not on this socket.", uid=7
    )
    assert await closed_with(comm) == (4403, "Forbidden")
    assert app.asked == [asked_for(pair)]
    assert app.changes.empty()


async def test_a_refusal_without_a_close_code_answers_the_error_and_the_connection_stays_public(
    pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("public", refusal=refuse(RefusedQuietly))
    comm = await opened(sockets, app)

    assert await ask(comm, {"type": "auth", "access_token": pair.access}) == error(
        "AUTH_FAILED", "Not with these rights."
    )
    assert await whoami(comm) == (None, None)
    assert app.asked == [asked_for(pair)]
    assert app.changes.empty()


async def test_authorize_decides_per_identity(editor: User, admin: User, sockets: list[WebsocketCommunicator]) -> None:
    app = consumer("public", refusal=lambda identity: None if identity.user.is_superuser else Refused())
    comm = await opened(sockets, app)

    reply = await ask(comm, {"type": "auth", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert (reply["type"], reply["status"]) == ("auth", "ok")
    assert await whoami(comm) == (ADMIN_EMAIL, ADMIN_EMAIL)

    assert await ask(comm, {"type": "auth", "email": EDITOR_EMAIL, "password": EDITOR_PASSWORD}) == error(
        "AUTH_FAILED", "Not on this socket."
    )
    assert await closed_with(comm) == (4403, "Forbidden")
    assert [(asked.user, asked.user_meanwhile) for asked in app.asked] == [
        (ADMIN_EMAIL, None),
        (EDITOR_EMAIL, ADMIN_EMAIL),
    ]
    assert app.changes.get_nowait() == (None, ADMIN_EMAIL)
    assert app.changes.empty()  # the editor never became the user, not even for a moment


# -- credentials of connection_init ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["access_token", "password", "refresh_token"])
async def test_connection_init_credentials_are_authorized_once_then_are_the_user(
    kind: str, pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("handshake")
    comm = await opened(sockets, app)

    assert await ask(comm, {"type": "connection_init", "payload": credentials(kind, pair)}) == {
        "type": "connection_ack"
    }

    assert await whoami(comm) == (EDITOR_EMAIL, EDITOR_EMAIL)
    [asked] = app.asked
    assert (asked.user, asked.user_meanwhile) == (EDITOR_EMAIL, None)
    assert app.changes.get_nowait() == (None, EDITOR_EMAIL)


async def test_connection_init_refused_by_authorize_leaves_the_rejection_to_the_caller(
    pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("handshake", refusal=refuse())
    comm = await opened(sockets, app)

    await comm.send_json_to({"type": "connection_init", "payload": {"access_token": pair.access}})

    assert await closed_with(comm) == (4403, "Forbidden")  # the consumer's own rejection; the mixin sent nothing
    assert app.asked == [asked_for(pair)]
    assert app.changes.empty()


# -- failures never reach authorize() ----------------------------------------------------------------------------


async def test_bad_credentials_in_an_auth_frame_are_not_authorized(sockets: list[WebsocketCommunicator]) -> None:
    app = consumer("handshake")
    comm = await opened(sockets, app)
    assert await ask(comm, {"type": "auth", "access_token": "garbage", "uid": "x"}) == error(
        "AUTH_FAILED", "Authentication handshake failed.", uid="x"
    )
    assert await closed_with(comm) == (4401, "Unauthorized")
    assert app.asked == []


async def test_bad_connection_init_credentials_are_not_authorized(sockets: list[WebsocketCommunicator]) -> None:
    app = consumer("handshake")
    comm = await opened(sockets, app)
    await comm.send_json_to({"type": "connection_init", "payload": {"email": EDITOR_EMAIL, "password": "wrong"}})
    assert await closed_with(comm) == (4403, "Forbidden")
    assert app.asked == []


# -- time, through the injected clock ----------------------------------------------------------------------------


async def test_the_handshake_deadline_follows_the_injected_clock(sockets: list[WebsocketCommunicator]) -> None:
    clock = Clock(now=1_000_000.0)
    app = consumer("handshake", timeout=0.05, clock=clock)
    comm = await opened(sockets, app)

    await clock.read(6)  # the timer fired three times and found the clock short of the deadline
    assert await nothing_sent(comm)

    clock.now += 0.05
    assert await comm.receive_json_from(timeout=BOUND) == error("AUTH_FAILED", "Authentication handshake failed.")
    assert await closed_with(comm) == (4401, "Unauthorized")
    assert app.asked == []


async def expired_socket(
    sockets: list[WebsocketCommunicator], mode: str, pair: tokens.TokenPair
) -> tuple[WebsocketCommunicator, Clock]:
    """A socket logged in by URL token whose clock then reaches the token's ``exp`` (not a moment before)."""
    clock = Clock(now=pair.access_expires_at - 0.01)
    app = consumer(mode, timeout=0.05, clock=clock)
    comm = await opened(sockets, app, f"/mini?access_token={pair.access}")

    await clock.read(6)
    assert await nothing_sent(comm)
    assert await whoami(comm) == (EDITOR_EMAIL, EDITOR_EMAIL)

    clock.now = pair.access_expires_at
    assert await comm.receive_json_from(timeout=BOUND) == error("TOKEN_EXPIRED", "Token expired.")
    assert await whoami(comm) == (None, None)
    return comm, clock


@pytest.mark.parametrize("mode", ["handshake", "strict"])
async def test_expiry_then_no_reauth_within_the_window_closes_4401(
    mode: str, pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    comm, clock = await expired_socket(sockets, mode, pair)

    await clock.read(6)
    assert await nothing_sent(comm)
    clock.now += 0.05
    assert await comm.receive_json_from(timeout=BOUND) == error("AUTH_TIMEOUT", "Authentication timed out.")
    assert await closed_with(comm) == (4401, "Unauthorized")


async def test_expiry_in_public_mode_ends_the_window_and_stays_open(
    pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    comm, clock = await expired_socket(sockets, "public", pair)

    clock.now += 0.05
    assert await comm.receive_json_from(timeout=BOUND) == error("AUTH_TIMEOUT", "Authentication timed out.")
    assert await whoami(comm) == (None, None)


# -- an access token's one database read, after listening (issue 12) ---------------------------------------------


@pytest.mark.parametrize("way", ["auth frame", "connection_init"])
async def test_an_access_token_is_read_once_after_its_groups_are_listened_to(
    way: str, pair: tokens.TokenPair, monkeypatch: pytest.MonkeyPatch, sockets: list[WebsocketCommunicator]
) -> None:
    """The session and user are read once (they were read twice: to check the token, then again after joining the
    revocation groups), and only once the socket listens to both groups: a revocation committed after that read
    reaches the socket."""
    app = consumer("handshake")
    comm = await opened(sockets, app)
    reads: list[str] = []
    real = tokens.session_user

    def session_user(token: Any, session_id: str) -> Any:
        answer = real(token, session_id)
        reads.append(session_id)
        broadcast(session_group(session_id))  # revoked right after this read: the broadcast must reach the socket
        return answer

    monkeypatch.setattr(tokens, "session_user", session_user)
    if way == "auth frame":
        assert await ask(comm, {"type": "auth", "access_token": pair.access}) == {"type": "auth", "status": "ok"}
    else:
        assert await ask(comm, {"type": "connection_init", "payload": {"access_token": pair.access}}) == {
            "type": "connection_ack"
        }
    # The revocation that followed the read: back to the public role (TOKEN_EXPIRED), not left authenticated.
    assert await comm.receive_json_from(timeout=BOUND) == error("TOKEN_EXPIRED", "Token expired.")
    assert await whoami(comm) == (None, None)
    assert reads == [pair.session_id]
    assert [asked.session_id for asked in app.asked] == [pair.session_id]


async def test_a_layer_that_batches_group_calls_gets_one_call_per_login_and_one_per_close(
    editor: User,
    pair: tokens.TokenPair,
    layer: InMemoryChannelLayer,
    monkeypatch: pytest.MonkeyPatch,
    sockets: list[Any],
) -> None:
    """With the project's Redis layer (``group_add_many``: one round trip) a login joins its user's and session's
    groups in one call, and the socket leaves both in one call when it closes."""
    calls: list[tuple[str, list[str]]] = []

    async def add_many(groups: list[str], channel: str) -> None:
        calls.append(("add", groups))
        for group in groups:
            await layer.group_add(group, channel)

    async def discard_many(groups: list[str], channel: str) -> None:
        calls.append(("discard", groups))
        for group in groups:
            await layer.group_discard(group, channel)

    monkeypatch.setattr(layer, "group_add_many", add_many, raising=False)
    monkeypatch.setattr(layer, "group_discard_many", discard_many, raising=False)
    comm = await opened(sockets, consumer("public"), f"/mini?access_token={pair.access}")
    assert await whoami(comm) == (EDITOR_EMAIL, EDITOR_EMAIL)
    groups = sorted({session_group(pair.session_id or ""), user_group(editor.pk)})
    assert calls == [("add", groups)]

    await comm.disconnect(timeout=BOUND)

    assert calls == [("add", groups), ("discard", groups)]
    assert not layer.groups.get(groups[0]) and not layer.groups.get(groups[1])  # nobody left in either


# -- revocation and reload over the channel layer ----------------------------------------------------------------


async def test_a_revoked_session_returns_the_socket_to_the_public_role(
    pair: tokens.TokenPair, layer: InMemoryChannelLayer, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("public")
    comm = await opened(sockets, app, f"/mini?access_token={pair.access}")
    group = session_group(pair.session_id or "")

    await layer.group_send(group, {"type": REVOKE_MESSAGE, "group": group})

    assert await comm.receive_json_from(timeout=BOUND) == error("TOKEN_EXPIRED", "Token expired.")
    assert await whoami(comm) == (None, None)


async def test_a_rights_change_reloads_the_user_of_the_socket(
    editor: User, pair: tokens.TokenPair, sockets: list[WebsocketCommunicator]
) -> None:
    app = consumer("handshake")
    comm = await opened(sockets, app, f"/mini?access_token={pair.access}")
    assert await app.changes.get() == (None, EDITOR_EMAIL)

    def promote() -> None:
        editor.is_superuser = True
        editor.save()  # realtime_auth.signals: auth.reload to the user's group after commit

    await database_sync_to_async(promote)()

    assert await asyncio.wait_for(app.changes.get(), BOUND) == (EDITOR_EMAIL, EDITOR_EMAIL)
    assert (await ask(comm, {"type": "whoami"}))["superuser"] is True
    # A reload adopts the identity again through authorize(), while the socket is still the editor it was.
    reasked = Asked(EDITOR_EMAIL, pair.access_expires_at, pair.session_id, EDITOR_EMAIL, EDITOR_EMAIL)
    assert app.asked == [asked_for(pair), reasked]
