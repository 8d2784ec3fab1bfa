"""The collection registry: which Django models are reachable, under which names, with which row and field rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import Q
from django.utils.module_loading import import_string

from likha_realtime.wire.errors import InvalidPayload
from likha_realtime.wire.text import UNSTORABLE, storable

RowRule = Callable[[Any], Q | None]  # user (AnonymousUser for the public role) -> rows they may see; None: all
FieldRule = Callable[[Any], Iterable[str] | None]  # user -> readable field names; None: all


@dataclass(frozen=True)
class Collection:
    """A model exposed under ``name``; rules apply to everyone but superusers."""

    name: str
    model: type[models.Model]
    row_rule: RowRule | None = None
    field_rule: FieldRule | None = None
    fields: tuple[str, ...] = field(default=())  # exposed concrete fields (default: all)

    def __post_init__(self) -> None:
        concrete = tuple(f.name for f in self.model._meta.concrete_fields)
        unknown = set(self.fields) - set(concrete)
        if unknown:
            raise ImproperlyConfigured(f"Collection {self.name!r}: unknown fields {sorted(unknown)}.")
        object.__setattr__(self, "fields", self.fields or concrete)

    @property
    def pk_name(self) -> str:
        return self.model._meta.pk.name

    def perm(self, action: str) -> str:
        """The Django permission for ``action`` (view, add, change, delete) on this model."""
        meta = self.model._meta
        return f"{meta.app_label}.{action}_{meta.model_name}"

    def to_key(self, raw: Any) -> Any:
        """The primary-key value that a client's key (a string or an integer) stands for; ``InvalidPayload`` if none.

        ``"5"`` and ``5`` are the same key; a value the key column cannot hold (``"abc"``, an integer beyond its
        range) is refused here rather than reaching the database, where backends disagree about it.
        """
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise InvalidPayload("Keys must be strings or integers.")
        if not storable(raw):
            raise InvalidPayload(f"A key {UNSTORABLE}")
        pk = self.model._meta.pk
        try:
            key = pk.to_python(raw)
            pk.run_validators(key)
        except ValidationError as exc:
            raise InvalidPayload(f'Invalid key "{str(raw)[:64]}".') from exc
        return key

    def model_field(self, name: str) -> models.Field[Any, Any] | None:
        if name == "pk":
            name = self.pk_name
        if name not in self.fields:
            return None
        return self.model._meta.get_field(name)  # type: ignore[return-value]  # self.fields: concrete fields only


class Registry:
    def __init__(self) -> None:
        self._by_name: dict[str, Collection] = {}
        self._by_model: dict[type[models.Model], Collection] = {}

    def register(
        self,
        name: str,
        model: type[models.Model] | str,
        *,
        row_rule: RowRule | None = None,
        readable_fields: FieldRule | None = None,
        fields: Iterable[str] = (),
    ) -> Collection:
        model_class = apps.get_model(model) if isinstance(model, str) else model
        if not name.replace("_", "").isalnum() or len(name) > 64:
            raise ImproperlyConfigured(f"Collection name {name!r}: use letters, digits and underscores.")
        if name in self._by_name and self._by_name[name].model is not model_class:
            raise ImproperlyConfigured(f"Collection {name!r} is already registered for another model.")
        if model_class in self._by_model and self._by_model[model_class].name != name:
            raise ImproperlyConfigured(f"{model_class.__name__} is already registered as another collection.")
        collection = Collection(name, model_class, row_rule, readable_fields, tuple(fields))
        self._by_name[name] = collection
        self._by_model[model_class] = collection
        return collection

    def unregister(self, name: str) -> None:
        collection = self._by_name.pop(name)
        self._by_model.pop(collection.model, None)

    def get(self, name: Any) -> Collection | None:
        return self._by_name.get(name) if isinstance(name, str) else None

    def for_model(self, model: type[models.Model]) -> Collection | None:
        return self._by_model.get(model)

    def __iter__(self) -> Iterator[Collection]:
        return iter(list(self._by_name.values()))

    def load_settings(self, config: dict[str, Any]) -> None:
        """Register ``LIKHA_REALTIME["COLLECTIONS"]``: name -> "app.Model" or {"model", "row_rule", ...}."""
        for name, spec in config.items():
            if isinstance(spec, str):
                spec = {"model": spec}
            self.register(
                name,
                spec["model"],
                row_rule=_callable(spec.get("row_rule")),
                readable_fields=_callable(spec.get("readable_fields")),
                fields=spec.get("fields", ()),
            )


def _callable(value: Any) -> Any:
    return import_string(value) if isinstance(value, str) else value


registry = Registry()


def register(name: str, model: type[models.Model] | str, **options: Any) -> Collection:
    """Expose ``model`` as collection ``name``. Options: ``row_rule``, ``readable_fields``, ``fields``."""
    return registry.register(name, model, **options)
