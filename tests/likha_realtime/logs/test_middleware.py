"""The request log line: method, path without its query string, status, duration; redacted on the logs socket."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory

from likha_realtime.logs.handler import LogStreamHandler
from likha_realtime.logs.middleware import RequestLogMiddleware
from tests.likha_realtime.logs.support import RecordingLayer

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def middleware(get_response: Any) -> RequestLogMiddleware:
    made = RequestLogMiddleware(get_response)
    made.timer = itertools.count(1.0, 0.012).__next__  # 12 ms per request
    return made


def request_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "likha_realtime.requests"]


def test_a_request_is_one_info_line_without_its_query_string(caplog: pytest.LogCaptureFixture) -> None:
    request = RequestFactory().get("/items/products", {"access_token": JWT, "filter": '{"password":"x"}'})
    with caplog.at_level(logging.INFO):
        response = middleware(lambda _: HttpResponse(status=204))(request)
    assert response.status_code == 204
    assert request_lines(caplog) == [(logging.INFO, "GET /items/products 204 12ms")]


async def test_an_async_request_is_logged_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    async def respond(_: HttpRequest) -> HttpResponse:
        return HttpResponse(status=201)

    request = AsyncRequestFactory().post("/items/products?refresh_token=abc", {})
    with caplog.at_level(logging.INFO):
        response = await middleware(respond)(request)
    assert response.status_code == 201
    assert request_lines(caplog) == [(logging.INFO, "POST /items/products 201 12ms")]


def test_a_secret_in_the_path_is_redacted_on_the_logs_socket() -> None:
    layer = RecordingLayer()
    handler = LogStreamHandler(layer=layer, node_id="node-a")
    logger = logging.getLogger("likha_realtime.requests")
    logger.addHandler(handler)
    try:
        middleware(lambda _: HttpResponse(status=404))(RequestFactory().get(f"/auth/verify/{JWT}"))
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [frame["data"]["msg"] for frame in layer.frames(1)] == ["GET /auth/verify/[REDACTED] 404 12ms"]
