"""Feature flags kept in the backout store, evaluated the OpenFeature way, served over OFREP.

A plan sets a flag with the ``flag:`` action; the action's reverse puts the previous state
back, which is the kill switch. Apps read flags over HTTP (``backout flags serve``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backout.flags.evaluate import ErrorCode, Evaluation, Reason, bucket, evaluate
from backout.flags.model import FlagChange, FlagState

if TYPE_CHECKING:
    from backout.flags.repo import FlagUpdate


def __getattr__(name: str) -> Any:
    """``FlagUpdate`` loads with the store (:mod:`.repo`), when first asked for: a plan's
    ``flag:`` steps are validated without SQLAlchemy."""
    if name == "FlagUpdate":
        from backout.flags.repo import FlagUpdate

        return FlagUpdate
    raise AttributeError(f"module 'backout.flags' has no attribute {name!r}")


__all__ = [
    "ErrorCode",
    "Evaluation",
    "FlagChange",
    "FlagState",
    "FlagUpdate",
    "Reason",
    "bucket",
    "evaluate",
]
