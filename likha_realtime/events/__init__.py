"""Change events: capture after commit, publication across processes, delivery to subscribers.

``publish(collection_or_model, action, keys)`` announces writes that send no model signals (``QuerySet.update``,
``bulk_create``, raw SQL); ORM ``save()``/``delete()`` and ``QuerySet.delete()`` publish by themselves.
"""

from likha_realtime.events.capture import publish

__all__ = ["publish"]
