"""The event names of PROTOCOL §5 (subscription ``event`` and frames; GraphQL ``EventEnum``)."""

from __future__ import annotations

ACTIONS = ("create", "update", "delete")
