"""Query parsing, filter compilation and in-Python row matching for subscriptions; registers the ``lk_*`` lookups."""

from __future__ import annotations

from likha_realtime.query.lookups import register_lookups

register_lookups()

from likha_realtime.query.evaluate import Unevaluable, evaluate, fold  # noqa: E402
from likha_realtime.query.filters import compile_filter  # noqa: E402
from likha_realtime.query.parse import Query, parse_query  # noqa: E402
from likha_realtime.query.snapshot import snapshot  # noqa: E402

__all__ = ["Query", "Unevaluable", "compile_filter", "evaluate", "fold", "parse_query", "snapshot"]
