"""Related rows a row rule hides: the condition that a relation's row is visible, in SQL and for ``evaluate``.

A filter or sort that reads a related row must not read one the caller's row rule on the related collection hides
(PROTOCOL §5): it would answer questions about rows the caller cannot see. ``VisibleKeys`` is the subquery of the
keys of the visible rows; it keeps the rule it was built from, so ``evaluate`` can test a related row's snapshot
against the same rule instead of giving up on a subquery.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import ForeignKey, Model, Q, Subquery


class VisibleKeys(Subquery):
    """``SELECT <key> FROM <model> WHERE <rule>`` through ``model``'s default manager, as the right-hand side of
    ``<relation>__in``; ``rule`` and ``evaluable`` tell ``evaluate`` how to answer it on a snapshot."""

    def __init__(self, model: type[Model], rule: Q, key: str) -> None:
        manager = model._default_manager
        super().__init__(manager.filter(rule).order_by().values(key))  # order means nothing under IN
        self.related, self.key, self.rule = model, key, rule
        # A default manager that filters rows itself hides rows ``evaluate`` cannot know of.
        self.evaluable = not manager.all().query.has_filters()

    def __eq__(self, other: object) -> bool:
        """Equal for the same rows of the same model (a Subquery alone is equal only to itself)."""
        if not isinstance(other, VisibleKeys):
            return NotImplemented
        return (self.related, self.key, self.rule) == (other.related, other.key, other.rule)

    def __hash__(self) -> int:
        return hash((self.related, self.key))


def visible_through(path: str, relation: ForeignKey[Any, Any], rule: Q, *, nullable: bool) -> Q:
    """The rows whose related row at ``path`` (through the forward ``relation``) is one ``rule`` shows.

    ``nullable``: the path may be NULL (a nullable relation on the way); then a NULL relation passes too, since it
    hides nothing: conditions through it read NULL, as they always did.
    """
    related = cast("type[Model]", relation.related_model)
    visible = Q(**{f"{path}__in": VisibleKeys(related, rule, relation.target_field.name)})
    return Q(**{f"{path}__isnull": True}) | visible if nullable else visible
