"""A WebSocket handshake to a path where no socket is: refused (HTTP 403) with one INFO line, never a 500 with a
traceback (hostile review of issue 10) — also for a host with WebSocket routes of its own, mounted as
docs/CONFIGURATION.md ("Mounting") shows, whose routes get the sockets' guards."""

from __future__ import annotations

import logging
import sys
from types import ModuleType
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from likha_realtime.routing import websocket_application
from tests.likha_realtime.support import FRAME_WAIT
from tests.live.harness import ROOT
from tests.test_readme import snippet

CONFIGURATION = ROOT / "docs" / "CONFIGURATION.md"


@pytest.mark.parametrize("path", ["/nope", "/websockets/", "/WEBSOCKETS", "/graphql/", "/websockets/logs%0AFORGED"])
async def test_a_path_without_a_socket_is_refused_before_accept(path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert await handshake(websocket_application(), path) == "refused"
    shown = path.replace("%0A", "\\n")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "likha_realtime.routing",
            logging.INFO,
            f"WebSocket handshake to {shown} refused (HTTP 403): no socket at this path",
        )
    ]


# -- a host's own WebSocket routes (docs/CONFIGURATION.md, "Mounting") ---------------------------------------------


class StockAlertConsumer(AsyncWebsocketConsumer):
    """The ERP's own consumer of the documented example: accepts and says hello."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data="stock alerts")


async def handshake(app: Any, path: str, headers: dict[str, str] | None = None) -> str:
    """``accepted`` (then the first text frame, if any, after a colon) or ``refused`` (closed before accept)."""
    sent = [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    comm = WebsocketCommunicator(app, path, headers=sent)
    await comm.send_input({"type": "websocket.connect"})
    output = await comm.receive_output(timeout=FRAME_WAIT)
    if output["type"] != "websocket.accept":
        assert output == {"type": "websocket.close"}, output
        await comm.wait(timeout=FRAME_WAIT)
        return "refused"
    first = await comm.receive_output(timeout=FRAME_WAIT) if path.startswith("/erp/") else {}
    await comm.disconnect()
    return f"accepted:{first['text']}" if first else "accepted"


@pytest.fixture
def documented_application(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``application`` of the documented asgi.py lines, with the example's ``erp.consumers`` module."""
    consumers = ModuleType("erp.consumers")
    consumers.StockAlertConsumer = StockAlertConsumer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "erp", ModuleType("erp"))
    monkeypatch.setitem(sys.modules, "erp.consumers", consumers)

    async def django_asgi_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no HTTP in these tests")

    namespace: dict[str, Any] = {"django_asgi_app": django_asgi_app}
    code = snippet("own-websocket-routes", document=CONFIGURATION)
    exec(compile(code, "CONFIGURATION.md (own-websocket-routes)", "exec"), namespace)
    return namespace["application"]


@pytest.mark.django_db(transaction=True)  # consumers close stale database connections on every message
async def test_the_documented_host_routes_are_served_beside_the_sockets(documented_application: Any) -> None:
    assert await handshake(documented_application, "/erp/stock-alerts") == "accepted:stock alerts"
    assert await handshake(documented_application, "/websockets") == "accepted"


async def test_with_host_routes_an_unknown_path_is_still_a_clean_403(
    documented_application: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert await handshake(documented_application, "/erp/no-such-socket") == "refused"
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "likha_realtime.routing",
            logging.INFO,
            "WebSocket handshake to /erp/no-such-socket refused (HTTP 403): no socket at this path",
        )
    ]


@pytest.mark.django_db(transaction=True)  # consumers close stale database connections on every message
async def test_the_host_routes_get_the_origin_and_host_checks(documented_application: Any) -> None:
    with override_settings(ALLOWED_HOSTS=["erp.example.com"]):
        own = {"origin": "https://erp.example.com", "host": "erp.example.com"}
        assert await handshake(documented_application, "/erp/stock-alerts", own) == "accepted:stock alerts"
        other = {"origin": "https://evil.example", "host": "erp.example.com"}
        assert await handshake(documented_application, "/erp/stock-alerts", other) == "refused"
        forged_host = {"origin": "https://erp.example.com", "host": "evil.example"}
        assert await handshake(documented_application, "/erp/stock-alerts", forged_host) == "refused"
