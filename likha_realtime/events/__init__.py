"""Change events: capture after commit, publication across processes, delivery to subscribers.

``publish(collection_or_model, action, keys)`` announces writes that send no model signals (``QuerySet.update``,
``bulk_create``, raw SQL); ORM ``save()``/``delete()`` and ``QuerySet.delete()`` publish by themselves.
"""

from __future__ import annotations

from typing import Any


# The implementation lives in ``broadcast``: a submodule named ``publish`` would replace this function as the
# package's attribute as soon as it is imported, and ``from likha_realtime.events import publish`` would get a module.
def publish(target: Any, action: str, keys: Any, **options: Any) -> None:
    """See ``likha_realtime.events.broadcast.publish``."""
    from likha_realtime.events.broadcast import publish as _publish

    _publish(target, action, keys, **options)
