"""backout — backout plans as code: validated, executed by a durable engine, verified.

The public API is small on purpose; everything else is private and may change. The errors
are imported at once (they cost nothing); the rest loads when first used, so that
``import backout.errors`` (or the step shim, or a plugin) does not pull in SQLAlchemy,
pydantic and the plan loader.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from backout.errors import (
    Ambiguous,
    BackoutError,
    Conflict,
    Forbidden,
    Invalid,
    Issue,
    NeedsAttentionError,
    NotFound,
    PlanError,
    ServiceBusyError,
    StoreError,
    TemplateError,
    TransitionError,
    UsageError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from backout.plans import load_plan
    from backout.reports import RunReport, SnapshotReport
    from backout.settings import Settings
    from backout.spec.loader import LoadedPlan
    from backout.spec.models import Plan

_LAZY = {
    "LoadedPlan": "backout.spec.loader",
    "load_plan": "backout.plans",
    "Plan": "backout.spec.models",
    "RunReport": "backout.reports",
    "SnapshotReport": "backout.reports",
    "Settings": "backout.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backout' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


__all__ = [
    "Ambiguous",
    "BackoutError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "Issue",
    "LoadedPlan",
    "NeedsAttentionError",
    "NotFound",
    "Plan",
    "PlanError",
    "RunReport",
    "ServiceBusyError",
    "Settings",
    "SnapshotReport",
    "StoreError",
    "TemplateError",
    "TransitionError",
    "UsageError",
    "__version__",
    "load_plan",
]
