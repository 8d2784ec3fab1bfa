"""Event frames written to the WebSocket protocol at once, without a trip through the ASGI ``send`` coroutine chain.

Fan-out sends hundreds of frames per event per process. Through channels, each is a ``send`` coroutine chain
(consumer → ``base_send`` → daphne's ``Server.handle_reply`` → the protocol), on the delivery task's turn. Under
daphne, ``send`` is ``functools.partial(Server.handle_reply, protocol)`` and ``handle_reply`` does nothing that waits:
it checks that the connection is still open and hands the message to the protocol. ``DirectSender`` does exactly that,
synchronously, so that the fan-out can deliver an event to every idle connection in one pass
(``events.scheduler``, "Fast lane" in docs/FANOUT.md), and it writes a frame shared by many connections as one
prepared WebSocket message (``PreparedFrames``: framed once, written to each transport).

Only daphne's own, unwrapped ``send`` is bypassed: when middleware wraps ``send`` (an ERP's own metrics, say), or the
server is not daphne (tests' ``WebsocketCommunicator``, another ASGI server), ``direct_sender`` returns ``None`` and
every frame goes through ``send`` as before. The protocol's own checks (the outgoing buffer bound of
``likha_realtime.server``: slow readers are closed 4429) apply to both ways.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from autobahn.exception import Disconnected

from likha_realtime.backpressure import text_size
from likha_realtime.wire.prepared import PreparedFrames


class DirectSender:
    """Writes text frames to one daphne WebSocket protocol, synchronously."""

    __slots__ = ("_connections", "protocol")

    def __init__(self, connections: dict[Any, dict[str, Any]], protocol: Any) -> None:
        self._connections = connections  # daphne's Server.connections
        self.protocol = protocol

    def send_text(self, text: str, prepared: PreparedFrames | None = None) -> bool:
        """Write ``text`` (or its prepared message from ``prepared``); ``False`` when the connection is gone (the frame
        is dropped, as daphne's ``handle_reply`` drops it)."""
        state = self._connections.get(self.protocol)
        if state is None or state.get("disconnected"):
            return False
        protocol = self.protocol
        try:
            if prepared is not None and protocol.state == protocol.STATE_OPEN:
                prepare = getattr(protocol, "send_prepared", None)
                if prepare is not None:
                    return bool(prepare(prepared.get(protocol, text), text_size(text)))
            protocol.handle_reply({"type": "websocket.send", "text": text})
        except Disconnected:  # the client's close crossed the frame: dropped, as send_text drops it
            return False
        return True


def direct_sender(send: Any) -> DirectSender | None:
    """A ``DirectSender`` when ``send`` is daphne's own ``Server.handle_reply`` bound to a WebSocket protocol."""
    daphne_server = sys.modules.get("daphne.server")  # not imported: not served by daphne
    if daphne_server is None or not isinstance(send, functools.partial) or send.keywords or len(send.args) != 1:
        return None
    handle = send.func
    server = getattr(handle, "__self__", None)
    if getattr(handle, "__func__", None) is not daphne_server.Server.handle_reply or server is None:
        return None  # a subclass's own handle_reply, or something else: it must see every frame
    protocol = send.args[0]
    if not hasattr(protocol, "STATE_OPEN") or not isinstance(getattr(server, "connections", None), dict):
        return None
    return DirectSender(server.connections, protocol)
