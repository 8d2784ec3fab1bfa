"""Wire messages of the REST socket (PROTOCOL §3–§4), one TypedDict each, direction in the docstring."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Uid = str | int | float


class PingMessage(TypedDict):
    """client -> server, and server -> client (heartbeat, without uid)."""

    type: Literal["ping"]
    uid: NotRequired[Uid]


class PongMessage(TypedDict):
    """server -> client (answer to a ping, uid echoed), and client -> server (answer to a heartbeat ping)."""

    type: Literal["pong"]
    uid: NotRequired[Uid]


class AuthMessage(TypedDict):
    """client -> server: exactly one of access_token, email+password, refresh_token."""

    type: Literal["auth"]
    access_token: NotRequired[str]
    email: NotRequired[str]
    password: NotRequired[str]
    refresh_token: NotRequired[str]
    uid: NotRequired[Uid]


class AuthOk(TypedDict):
    """server -> client: auth succeeded; refresh_token for email/password and refresh logins."""

    type: Literal["auth"]
    status: Literal["ok"]
    refresh_token: NotRequired[str]
    uid: NotRequired[Uid]


class ErrorBody(TypedDict):
    code: str
    message: str


class ErrorFrame(TypedDict):
    """server -> client: the error envelope; type is the context (auth, server, items, subscribe, ...)."""

    type: str
    status: Literal["error"]
    error: ErrorBody
    uid: NotRequired[Uid]
