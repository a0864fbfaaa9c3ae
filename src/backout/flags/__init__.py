"""Feature flags kept in the backout store, evaluated the OpenFeature way, served over OFREP.

A plan sets a flag with the ``flag:`` action; the action's reverse puts the previous state
back, which is the kill switch. Apps read flags over HTTP (``backout flags serve``).
"""

from __future__ import annotations

from backout.flags.evaluate import ErrorCode, Evaluation, Reason, bucket, evaluate
from backout.flags.model import FlagChange, FlagState
from backout.flags.repo import FlagUpdate

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
