"""backout — backout plans as code: validated, executed by a durable engine, verified.

The public API is small on purpose; everything else is private and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from backout.errors import (
    BackoutError,
    Issue,
    NeedsAttentionError,
    PlanError,
    ServiceBusyError,
    StoreError,
    TemplateError,
    TransitionError,
    UsageError,
)
from backout.reports import RunReport, SnapshotReport
from backout.settings import Settings
from backout.spec.loader import LoadedPlan, load_plan
from backout.spec.models import Plan

__all__ = [
    "BackoutError",
    "Issue",
    "LoadedPlan",
    "NeedsAttentionError",
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
