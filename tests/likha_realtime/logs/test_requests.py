"""The ASGI request log (``logs.requests.request_log``): one INFO line per HTTP request, whatever becomes of it, and
never two when a host also installs ``RequestLogMiddleware``."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator, HttpCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.test import Client, override_settings

from likha_realtime.logs.middleware import RequestLogMiddleware
from likha_realtime.logs.requests import RequestLog, request_log
from likha_realtime.routing import build_application

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
LOGGER = "likha_realtime.requests"


@pytest.fixture(autouse=True)
def twelve_ms_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner in (RequestLog, RequestLogMiddleware):
        monkeypatch.setattr(owner, "timer", itertools.count(1.0, 0.012).__next__)


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[tuple[int, str]]]]:
    with caplog.at_level(logging.INFO):
        yield lambda: [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def http_scope(path: str = "/items/products", method: str = "GET", query: bytes = b"") -> Message:
    return {"type": "http", "http_version": "1.1", "method": method, "path": path, "query_string": query, "headers": []}


async def answering(scope: Message, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def run(app: Any, scope: Message, *inputs: Message) -> list[Message]:
    """Run ``app`` on ``scope`` with ``inputs`` to receive; every message it sent (its exception propagates)."""
    comm = ApplicationCommunicator(app, scope)
    for message in inputs:
        await comm.send_input(message)
    await comm.wait(timeout=5)
    sent = []
    while not comm.output_queue.empty():
        sent.append(comm.output_queue.get_nowait())
    return sent


REQUEST = {"type": "http.request", "body": b""}


async def test_a_request_is_one_info_line_without_its_query_string(lines: Any) -> None:
    scope = http_scope(query=f"access_token={JWT}&filter=x".encode())
    sent = await run(request_log(answering), scope, REQUEST)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert lines() == [(logging.INFO, "GET /items/products 204 12ms")]


async def test_an_application_that_raises_before_answering_is_logged_as_500(lines: Any) -> None:
    async def broken(scope: Message, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run(request_log(broken), http_scope(method="POST"), REQUEST)
    assert lines() == [(logging.INFO, "POST /items/products 500 12ms")]


async def test_an_application_that_raises_after_answering_is_logged_with_its_status(lines: Any) -> None:
    async def half(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        raise RuntimeError("lost the body")

    with pytest.raises(RuntimeError):
        await run(request_log(half), http_scope(method="POST"), REQUEST)
    assert lines() == [(logging.INFO, "POST /items/products 201 12ms")]


async def test_a_client_gone_before_the_answer_is_logged_as_499(lines: Any) -> None:
    async def gives_up(scope: Message, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # as Django's ASGI handler does: no response once the client has gone

    await run(request_log(gives_up), http_scope(), REQUEST, {"type": "http.disconnect"})
    assert lines() == [(logging.INFO, "GET /items/products 499 12ms")]


async def test_an_application_cancelled_by_the_server_is_logged_as_499(lines: Any) -> None:
    started = asyncio.Event()

    async def slow(scope: Message, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    comm = ApplicationCommunicator(request_log(slow), http_scope())
    await comm.send_input(REQUEST)
    await asyncio.wait_for(started.wait(), 5)
    comm.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await comm.future
    assert lines() == [(logging.INFO, "GET /items/products 499 12ms")]


async def test_an_application_that_returns_without_answering_is_logged_as_500(lines: Any) -> None:
    async def silent(scope: Message, receive: Receive, send: Send) -> None:
        await receive()

    await run(request_log(silent), http_scope(), REQUEST)
    assert lines() == [(logging.INFO, "GET /items/products 500 12ms")]


async def test_other_scopes_pass_through_unlogged(lines: Any) -> None:
    seen: list[str] = []

    async def lifespan(scope: Message, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await run(request_log(lifespan), {"type": "lifespan"})
    assert (seen, lines()) == (["lifespan"], [])


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (f"/auth/verify/{JWT}", "GET /auth/verify/[REDACTED] 204 12ms"),
        ("/items/x\nINFO forged line", "GET /items/x\\nINFO forged line 204 12ms"),
        ("/items/\x1b[31mred", "GET /items/\\x1b[31mred 204 12ms"),
        ("/items/café", "GET /items/café 204 12ms"),
    ],
    ids=["jwt in the path", "newline", "terminal escape", "non-ascii"],
)
async def test_paths_are_logged_without_secrets_on_one_line(lines: Any, path: str, logged: str) -> None:
    await run(request_log(answering), http_scope(path=path), REQUEST)
    assert lines() == [(logging.INFO, logged)]


async def test_wrapping_twice_logs_once(lines: Any) -> None:
    await run(request_log(request_log(answering)), http_scope(), REQUEST)
    assert lines() == [(logging.INFO, "GET /items/products 204 12ms")]


# -- with Django, and with the middleware as well ----------------------------------------------------------------


# ASGIHandler rather than get_asgi_application(), whose django.setup() would configure logging again (and drop
# caplog's handler); it loads MIDDLEWARE when made.
MIDDLEWARE_FIRST = ["likha_realtime.logs.middleware.RequestLogMiddleware", "django.middleware.common.CommonMiddleware"]


async def get(app: Any, path: str) -> int:
    comm = HttpCommunicator(app, "GET", path, headers=[(b"host", b"testserver")])
    response = await comm.get_response(timeout=5)
    await comm.wait(timeout=5)  # the line is written when the application returns
    status: int = response["status"]
    return status


@pytest.mark.django_db
async def test_the_built_application_logs_each_request_once(lines: Any) -> None:
    assert await get(build_application(ASGIHandler()), "/server/info?x=1") == 200
    assert lines() == [(logging.INFO, "GET /server/info 200 12ms")]


@pytest.mark.django_db
@override_settings(MIDDLEWARE=MIDDLEWARE_FIRST)
async def test_the_middleware_is_silent_for_a_request_the_asgi_log_logs(lines: Any) -> None:
    assert await get(request_log(ASGIHandler()), "/server/info") == 200
    assert lines() == [(logging.INFO, "GET /server/info 200 12ms")]


@pytest.mark.django_db
@override_settings(MIDDLEWARE=MIDDLEWARE_FIRST)
async def test_the_middleware_logs_an_asgi_request_not_wrapped(lines: Any) -> None:
    assert await get(ASGIHandler(), "/items/nope") == 403
    assert lines() == [(logging.INFO, "GET /items/nope 403 12ms")]


@pytest.mark.django_db
@override_settings(MIDDLEWARE=MIDDLEWARE_FIRST)
def test_the_middleware_logs_a_wsgi_request(lines: Any) -> None:
    assert Client().get("/server/info").status_code == 200
    assert lines() == [(logging.INFO, "GET /server/info 200 12ms")]


@pytest.mark.django_db
def test_without_either_a_wsgi_request_is_not_logged(lines: Any) -> None:
    """The demo installs no middleware: its request lines come from the ASGI application (the server's)."""
    assert Client().get("/server/info").status_code == 200
    assert lines() == []
