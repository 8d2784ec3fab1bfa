"""Change events: capture after commit, publication across processes, delivery to subscribers.

``publish(collection_or_model, action, keys)`` announces writes that send no model signals (``QuerySet.update``,
``bulk_create``, raw SQL); ORM ``save()``/``delete()`` and ``QuerySet.delete()`` publish by themselves.
"""

from __future__ import annotations

from typing import Any


def publish(target: Any, action: str, keys: Any, **options: Any) -> None:
    """See ``likha_realtime.events.publish.publish``."""
    from likha_realtime.events.publish import publish as _publish

    _publish(target, action, keys, **options)
