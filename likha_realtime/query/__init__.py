"""Query parsing, filter compilation and in-Python row matching for subscriptions.

The compiled filters use the ``lk_*`` lookups of ``query.lookups``, registered by the app's ``ready()``.
"""

from __future__ import annotations

from likha_realtime.query.evaluate import Unevaluable, evaluate, fold
from likha_realtime.query.filters import Guard, compile_filter
from likha_realtime.query.parse import Query, parse_query
from likha_realtime.query.snapshot import snapshot

__all__ = ["Guard", "Query", "Unevaluable", "compile_filter", "evaluate", "fold", "parse_query", "snapshot"]
