"""``PreparedFrames``: one event batch's WebSocket messages, framed once and written to every connection that sends the
same text (``likha_realtime.sockets.direct``)."""

from __future__ import annotations

from typing import Any


class PreparedFrames:
    """One event batch's frames, each framed once as a WebSocket message (autobahn's ``prepareMessage``) and written
    to every connection that sends the same text (same batch, same uid): the framing and UTF-8 encoding are not
    repeated per connection."""

    __slots__ = ("_by_text",)

    def __init__(self) -> None:
        self._by_text: dict[str, Any] = {}

    def get(self, protocol: Any, text: str) -> Any:
        prepared = self._by_text.get(text)
        if prepared is None:
            prepared = self._by_text[text] = protocol.factory.prepareMessage(text.encode("utf-8"), False)
        return prepared
