"""Which fields a save changed: values remembered before (``track_changes``), compared after (``changed_fields``).

Events of updates carry these names, so that a subscriber that neither sees nor tests any of them is not told
(PROTOCOL §5). ORM saves without ``track_changes()`` or ``update_fields`` leave them unknown: any field may have
changed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from django.db.models import Model


def track_changes(instance: Model) -> None:
    """Remember ``instance``'s values now, so that its next save announces which fields it changed.

    An update that changed only fields a subscriber neither sees nor filters on then sends that subscriber nothing
    (PROTOCOL §5). The socket's and HTTP's ``items`` updates and GraphQL mutations call this; ERP code may too
    (``from likha_realtime.access.changes import track_changes``).
    Without it (or ``save(update_fields=...)``), an update is announced as possibly changing any field.
    """
    instance._likha_before = _values(instance)  # type: ignore[attr-defined]  # read by the next post_save


def _values(instance: Model) -> dict[str, Any]:
    # A copy: a save() that edits a JSON value in place must still count as a change.
    return copy.deepcopy({field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields})


def changed_fields(instance: Model, update_fields: Iterable[str] | None) -> frozenset[str] | None:
    """The names of the fields a save changed: by comparison with ``track_changes()``'s values, narrowed to
    ``update_fields`` when the save named them; ``None`` when neither tells."""
    before = instance.__dict__.pop("_likha_before", None)
    options = instance._meta
    named = None if update_fields is None else frozenset(options.get_field(name).name for name in update_fields)
    if before is None:
        return named
    after = _values(instance)
    changed = frozenset(
        field.name for field in options.concrete_fields if before.get(field.attname) != after[field.attname]
    )
    return changed if named is None else changed & named
