"""The project's server: daphne, extended so WebSocket close reasons reach clients."""

from __future__ import annotations

import contextlib
import gc
import logging
import pprint
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

# daphne.cli imports daphne.server, which installs Twisted's asyncio reactor, before anything Twisted.
import daphne.cli
import daphne.server
import daphne.ws_protocol
from django.core.exceptions import ImproperlyConfigured
from twisted.internet import tcp

from likha_realtime.backpressure import CLOSE_CODE, SendBuffer, record_slow_reader, send_buffer_limit, text_size
from likha_realtime.logs.redact import redact
from likha_realtime.oversize import OversizeGuard

logger = logging.getLogger(__name__)

# RFC 6455 5.5: control frame payloads are at most 125 bytes, 2 of which hold the close code.
MAX_CLOSE_REASON_BYTES = 123
CONFIGURATION_ERROR_STATUS = 2
OUR_APPS = ("likha_realtime", "realtime_auth")
# Django's own deploy checks that the server runs too: a weak or development SECRET_KEY (security.W009) or fallback
# (security.W025) lets whoever guesses it forge sessions and password-reset links, whatever key signs the JWTs.
DJANGO_KEY_CHECKS = frozenset({"security.W009", "security.W025"})


class LazyPformat:
    """``pprint.pformat(obj)`` when the text is asked for, not before: autobahn passes ``pformat`` of ~40 settings to
    a debug log line on every new connection, formatted whether debug logging is on or not (py-spy: 3 % of an
    authenticated connect's CPU). ``install_lazy_pformat`` puts this in its place for that line;
    tests/likha_realtime/test_write_through.py fails if autobahn stops calling it so."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __str__(self) -> str:
        return pprint.pformat(self.obj)

    __repr__ = __str__


_CONNECTION_MADE: Any = None  # the code of autobahn's WebSocketProtocol._connectionMade (install_lazy_pformat)


def _pformat(obj: Any) -> Any:
    """autobahn's ``pformat``: lazy for the connection's settings line, the text itself for any other caller (its
    ``Timings.__str__`` returns it)."""
    if sys._getframe(1).f_code is _CONNECTION_MADE:
        return LazyPformat(obj)
    return pprint.pformat(obj)


def install_lazy_pformat() -> None:
    global _CONNECTION_MADE
    from autobahn.websocket import protocol  # imported by daphne.ws_protocol already

    _CONNECTION_MADE = protocol.WebSocketProtocol._connectionMade.__code__
    protocol.pformat = _pformat  # type: ignore[assignment]  # the module's own ``from pprint import pformat``


install_lazy_pformat()


def truncate_close_reason(reason: str, limit: int = MAX_CLOSE_REASON_BYTES) -> str:
    """``reason`` cut to at most ``limit`` UTF-8 bytes, never in the middle of a character."""
    # Lone surrogates cannot be sent as UTF-8; "replace" turns them into "?".
    encoded = reason.encode("utf-8", errors="replace")
    # ``encoded`` is valid UTF-8, so the only bytes "ignore" can drop are those of a cut last character.
    return encoded[:limit].decode("utf-8", errors="ignore")


class ReasonWebSocketProtocol(OversizeGuard, daphne.ws_protocol.WebSocketProtocol):
    """Daphne's WebSocket protocol, sending the ASGI ``reason`` of ``websocket.close`` in the close frame; messages
    over ``MESSAGE_MAX_BYTES`` are refused by the application with its close 4413, never by a reset (``oversize``);
    and with a
    bounded outgoing buffer (``likha_realtime.backpressure``): the protocol is its transport's streaming producer,
    so Twisted tells it when the client stops taking bytes; an application message that would leave more than
    ``SEND_BUFFER_MAX_BYTES`` waiting is not sent and the socket is closed 4429 "Too Many Requests"."""

    send_buffer: SendBuffer | None = None  # None: no bound (no limit given, or a transport without producers)
    slow_reader_closed = False
    _slow_close_scheduled = False

    def connectionMade(self) -> None:
        super().connectionMade()
        upgraded_from = getattr(self.transport, "producer", None)  # the HTTP channel that read the upgrade request
        if upgraded_from is not None and upgraded_from is not self:
            self.factory.reactor.callLater(0, release_upgrade_channel, upgraded_from)
        limit = getattr(self.factory.server_class, "send_buffer_max_bytes", None)
        if limit is None:
            return
        # The HTTP channel that read the upgrade request is still registered as the transport's producer; it is
        # done with this connection (daphne handed the transport over), so this protocol takes its place.
        with contextlib.suppress(RuntimeError):  # a transport that insists on one being registered
            self.transport.unregisterProducer()
        try:
            self.transport.registerProducer(self, True)
        except (AttributeError, RuntimeError) as exc:
            logger.warning("no outgoing buffer bound on this socket: its transport refused a producer (%s)", exc)
            return
        self.send_buffer = SendBuffer(int(limit))

    # -- Twisted's IPushProducer: the transport reports its write buffer full / empty ------------------------------

    def pauseProducing(self) -> None:
        if self.send_buffer is not None:
            self.send_buffer.pause()

    def resumeProducing(self) -> None:
        if self.send_buffer is not None:
            self.send_buffer.resume()

    def stopProducing(self) -> None:
        """The connection is lost: ``onClose`` tells the application."""

    def connectionLost(self, reason: Any) -> None:
        """The connection is gone: what it still had to send is released now, not when the garbage collector gets
        to this protocol (a slow reader's close leaves up to ``SEND_BUFFER_MAX_BYTES`` and a frame in Twisted's
        buffer, and the protocol lives on in reference cycles with its application: a hundred of them held ~130 MiB
        until a full collection)."""
        transport = self.transport
        try:
            super().connectionLost(reason)
        finally:
            release_buffers(transport)
            queue = getattr(self, "send_queue", None)  # autobahn's own queue of frames waiting to be sent
            if queue:
                queue.clear()

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Every byte autobahn writes (messages, control frames) is counted while the transport is full."""
        buffer = self.send_buffer
        was_paused = buffer is not None and buffer.paused
        super().sendData(data, sync, chopsize)
        if buffer is not None:
            buffer.written(len(data), while_paused=was_paused)
            if buffer.over and not self.slow_reader_closed and not self._slow_close_scheduled:
                self._slow_close_scheduled = True
                # Only control frames the client asked for (pongs) get here: messages are checked before they
                # are written. Closed on the next reactor turn, not in the middle of autobahn writing a frame.
                self.factory.reactor.callLater(0, self.close_slow_reader, 0)

    def close_slow_reader(self, size: int) -> None:
        """Send nothing more, close 4429 (counted, logged). The close frame waits behind what the client has not
        read; autobahn drops the connection (abort: the buffered bytes are released) when the close handshake
        times out (``closeHandshakeTimeout``, 1 s), and the application then gets ``websocket.disconnect``."""
        if self.slow_reader_closed:
            return
        self.slow_reader_closed = True
        buffer = self.send_buffer
        peer = "%s:%s" % tuple(self.client_addr) if getattr(self, "client_addr", None) else None  # noqa: UP031
        path = getattr(self, "path", b"").decode("ascii", errors="replace")
        waiting, limit = (buffer.pending + size, buffer.limit) if buffer is not None else (size, 0)
        record_slow_reader(f"path {path}", waiting, limit, peer)
        if self.state == self.STATE_OPEN:
            self.sendClose(code=int(CLOSE_CODE), reason=CLOSE_CODE.reason)
        if self.closeHandshakeTimeout <= 0 and self.state != self.STATE_CLOSED:
            self.dropConnection(abort=True)  # no close handshake timeout would ever drop it

    def send_prepared(self, prepared: Any, size: int) -> bool:
        """A frame prepared once for many connections (``sockets.direct``), with ``handle_reply``'s checks for a
        ``websocket.send``: nothing after a slow-reader close, and the outgoing buffer bound. ``False``: not sent."""
        if self.slow_reader_closed or self.state != self.STATE_OPEN:
            return False
        if self.send_buffer is not None and not self.send_buffer.admits(size):
            self.close_slow_reader(size)
            return False
        if (self._perMessageCompress is not None and not prepared.doNotCompress) or self.send_queue:
            self.sendPreparedMessage(prepared)  # compressed per connection, or behind autobahn's own queue
            return True
        data = prepared.payloadHybi
        buffer = self.send_buffer
        was_paused = buffer is not None and buffer.paused
        write_through(self.transport, data)
        if buffer is not None:
            buffer.written(len(data), while_paused=was_paused)
        return True

    def handle_reply(self, message: Mapping[str, Any]) -> None:
        if self.slow_reader_closed:
            return  # nothing more from the application: it gets websocket.disconnect once the connection drops
        kind = message.get("type")
        if kind == "websocket.send" and self.send_buffer is not None and self.state == self.STATE_OPEN:
            size = _payload_size(message)
            if not self.send_buffer.admits(size):
                self.close_slow_reader(size)
                return
        if kind == "websocket.close" and self.state != self.STATE_CONNECTING:
            self.serverClose(code=message.get("code"), reason=message.get("reason"))
            return
        # Everything else, including a close before accept (an HTTP 403 rejection), is daphne's.
        super().handle_reply(message)

    def serverClose(self, code: int | None = None, reason: str | None = None) -> None:
        """Close with ``code`` (1000 when ``None``) and ``reason`` (truncated to fit the close frame).

        As in daphne, autobahn's ``sendClose`` refuses codes other than 1000 and 3000-4999 by raising,
        so the application's ``send`` fails and daphne then closes the socket with 1011.
        """
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"websocket.close reason must be a str, not {type(reason).__name__}")
        self.sendClose(
            code=1000 if code is None else code,
            reason=truncate_close_reason(reason) if reason else None,
        )


def tune_gc() -> None:
    """The server process's garbage collector: ``GC_YOUNG_THRESHOLD`` allocations between two collections of the
    youngest generation (default 700, Python's own); the older generations' thresholds stay Python's.

    A full collection walks every object the process holds, and a connection holds a few hundred: at 10,000 open
    sockets each full pass stopped the process for ~0.8 s (measured with ``gc.callbacks``), and with Python's
    threshold an event's fan-out objects, collected young while still in use, brought one within seconds (a
    10,000-subscriber benchmark's p99 0.9-1.4 s; 380-430 ms with 20,000-50,000). Raised, garbage waits longer: the
    live memory tests (soak, churn, slow readers) failed at 20,000 and 50,000, so raising it is a deployment's choice
    (docs/DEPLOYMENT.md, "Garbage collection")."""
    from likha_realtime.conf import realtime_settings

    _, middle, old = gc.get_threshold()
    gc.set_threshold(int(realtime_settings.GC_YOUNG_THRESHOLD), middle, old)


def release_upgrade_channel(channel: Any) -> None:
    """Let go of the HTTP channel that read a WebSocket's upgrade request, once daphne is done with it.

    The channel and its request refer to each other (``channel.requests``, ``request.channel``), so with everything
    the request holds (headers, body, addresses) they outlived the upgrade as a reference cycle, freed only by the
    garbage collector's full pass: tens of objects per connection that piled up in the oldest generation and made
    each full pass, at 10,000 connections, a ~1 s stop of the whole process (the fan-out's p99 at that scale). With
    the cycle cut, reference counting frees them at once. Runs on the reactor turn after the upgrade (daphne's
    ``WebRequest.process`` still uses both until it returns)."""
    requests = getattr(channel, "requests", None)
    if isinstance(requests, list):
        requests.clear()


def write_through(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, but sent to the socket at once when nothing waits before it.

    Twisted's ``write`` always buffers: it registers the socket with the reactor (on the asyncio reactor an
    ``add_writer``, then a ``remove_writer`` once sent) and sends on the next turn of the loop. For the fan-out's one
    frame per connection per event that bookkeeping cost more than the send itself (py-spy: ~10 % of a busy
    process). On a plain TCP connection (not TLS) with nothing buffered, the frame is sent now with the transport's
    own ``writeSomeData``; what the kernel does not take (a full socket buffer) goes through ``write`` as before, so
    the order of bytes, the producer's pause at Twisted's buffer size, and the outgoing buffer bound are unchanged.
    tests/likha_realtime/test_server.py fails if Twisted changes what this relies on.
    """
    if (
        type(transport) is tcp.Server
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and len(transport.dataBuffer) == transport.offset
    ):
        sent = transport.writeSomeData(data)  # bytes sent, 0 when it would block, an exception when the link is gone
        if isinstance(sent, int):
            if sent >= len(data):
                return
            data = data[sent:]
    transport.write(data)  # the rest, or everything: Twisted's own way (a lost connection is found out there)


def release_buffers(transport: Any) -> None:
    """Drop the bytes a lost TCP connection still held for sending (Twisted keeps them on the transport object)."""
    if isinstance(transport, tcp.Connection) and not transport.connected:
        transport.dataBuffer, transport.offset = b"", 0
        transport._tempDataBuffer, transport._tempDataLen = [], 0


def _payload_size(message: Mapping[str, Any]) -> int:
    data = message.get("bytes")
    if data:
        return len(data)
    text = message.get("text")
    return text_size(text) if isinstance(text, str) else 0


class RedactingActionLogger:
    """daphne's access log with secrets masked: its HTTP lines carry the whole URI, query string included, so
    ``?access_token=eyJ…`` (or any secret-named parameter) would be printed in clear (``logs.redact``)."""

    def __init__(self, inner: Callable[[str, str, dict[str, Any]], None]) -> None:
        self.inner = inner

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str):
            details = {**details, "path": redact(path)}
        self.inner(protocol, action, details)


class Server(daphne.server.Server):
    """Daphne's server whose WebSocket factory builds :class:`ReasonWebSocketProtocol` instances.

    Unless given on the command line, autobahn's own limits on incoming messages and frames are off (0): it
    enforces them by dropping the connection (a reset); ``OversizeGuard`` bounds every message at
    ``MESSAGE_MAX_BYTES`` instead, and the application answers with its error and close 4413.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for name in ("websocket_max_message_size", "websocket_max_frame_size"):
            if kwargs.get(name) is None:
                kwargs[name] = 0
        if kwargs.get("action_logger") is not None:
            kwargs["action_logger"] = RedactingActionLogger(kwargs["action_logger"])
        # Read by each ReasonWebSocketProtocol (its outgoing buffer bound); None: unbounded, as in plain daphne.
        self.send_buffer_max_bytes: int | None = send_buffer_limit()
        tune_gc()
        super().__init__(*args, **kwargs)

    @property
    def ws_factory(self) -> daphne.ws_protocol.WebSocketFactory:
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: daphne.ws_protocol.WebSocketFactory) -> None:
        # daphne.server.Server.run() assigns a fresh WebSocketFactory; set the protocol on that instance only.
        if not issubclass(factory.protocol, ReasonWebSocketProtocol):
            factory.protocol = ReasonWebSocketProtocol
        # A protocol violation (a text frame that is not UTF-8, a bad opcode) fails the connection with a close
        # frame naming it (1007, 1002) before the TCP connection ends, instead of autobahn's default plain drop:
        # the client learns why. daphne's own setProtocolOptions call, after this assignment, sets other options.
        factory.setProtocolOptions(failByDrop=False)
        self._ws_factory = factory


class CommandLineInterface(daphne.cli.CommandLineInterface):
    """Daphne's command line with this project's server and defaults suited to long-lived sockets."""

    description = "Likha realtime server (daphne with WebSocket close reasons)"
    server_class = Server

    def __init__(self) -> None:
        super().__init__()
        # daphne's default (86400) closes every socket after 24 hours; -1 never does.
        self.parser.set_defaults(websocket_timeout=-1)
        # None: autobahn's limits off, MESSAGE_MAX_BYTES bounds messages (see Server, likha_realtime.oversize).
        self.parser.set_defaults(websocket_max_message_size=None, websocket_max_frame_size=None)

    def load_asgi_app(self, asgi_app_path: str) -> Any:
        try:
            application = super().load_asgi_app(asgi_app_path)
            run_system_checks()
            return application
        except ImproperlyConfigured as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            self.parser.exit(CONFIGURATION_ERROR_STATUS, f"configuration error: {message}\n")

    def run(self, args: Sequence[str]) -> None:
        # The settings are the caller's: DJANGO_SETTINGS_MODULE, or the default that the project's own asgi module
        # sets (``os.environ.setdefault`` in Django's template) — never this repository's demo settings.
        try:
            super().run(list(args))
        finally:
            from likha_realtime.metrics import process_ended  # after the settings: imports nothing of Django

            process_ended()  # with PROMETHEUS_MULTIPROC_DIR: this process's connections stop counting


def run_system_checks(warnings_to: TextIO | None = None) -> None:
    """Django's system checks before serving (docs/CONFIGURATION.md, "System checks"): errors stop the server, as in
    runserver; warnings are printed once, one line each, to ``warnings_to`` (stderr).

    Besides the checks ``runserver`` runs, this server runs the deployment checks of likha_realtime and
    realtime_auth (an in-memory channel layer, DEBUG, the JWT signing key), of Django's own ``--deploy`` checks those
    of ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` (``DJANGO_KEY_CHECKS``), and the public role's group check against
    the database. ``SILENCED_SYSTEM_CHECKS`` applies.
    """
    from django.conf import settings
    from django.core import checks

    if not settings.configured:
        return
    found = [*checks.run_checks(), *_our_deployment_messages()]
    # Django keeps registered checks in a set: sort so the lines come out in the same order on every start.
    found = sorted((message for message in found if not message.is_silenced()), key=lambda m: m.id or "")
    errors = [message for message in found if message.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(_one_line(e) for e in errors))
    for warning in found:
        if warning.level >= checks.WARNING:
            print(f"configuration warning: {_one_line(warning)}", file=warnings_to or sys.stderr, flush=True)


def _our_deployment_messages() -> list[Any]:
    from django.apps import apps
    from django.core.checks.registry import registry
    from django.db import DEFAULT_DB_ALIAS, connections

    from realtime_auth.checks import check_public_group

    everyday = set(registry.get_checks(include_deployment_checks=False))
    deploy = [check for check in registry.get_checks(include_deployment_checks=True) if check not in everyday]
    ours = [check for check in deploy if check.__module__.partition(".")[0] in OUR_APPS]
    djangos = [check for check in deploy if check.__module__.startswith("django.core.checks.security.")]
    messages = [message for check in ours for message in check(app_configs=None, databases=None)]
    messages += [m for check in djangos for m in check(app_configs=None, databases=None) if m.id in DJANGO_KEY_CHECKS]
    if apps.is_installed("realtime_auth"):
        messages += check_public_group(databases=[DEFAULT_DB_ALIAS])
        if not connections[DEFAULT_DB_ALIAS].in_atomic_block:  # this thread serves no queries: none left open
            connections[DEFAULT_DB_ALIAS].close()
    return messages


def _one_line(message: Any) -> str:
    text = " ".join(str(message.msg).split())
    return f"{text} ({message.id}: {message.hint})" if message.hint else f"{text} ({message.id})"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the server with ``argv`` (default: the process arguments)."""
    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
