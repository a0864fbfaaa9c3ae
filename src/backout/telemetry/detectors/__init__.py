"""Triggers' decision rules: each turns a stream of readings into verdicts with evidence.

The rules load on first use: the sequential test and the judge import scipy, which a
plan with only thresholds never needs (a process watching a fleet of them stays small)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from backout.telemetry.detectors.base import Decision, Detector, Verdict

if TYPE_CHECKING:
    from backout.telemetry.detectors.judge import MannWhitneyJudge
    from backout.telemetry.detectors.peers import ArgoRule, FlaggerRule
    from backout.telemetry.detectors.relative import Relative
    from backout.telemetry.detectors.sequential import (
        Sequential,
        quantile_upper_bound,
        rate_upper_bound,
    )
    from backout.telemetry.detectors.threshold import Threshold

_WHERE = {
    "ArgoRule": "peers",
    "FlaggerRule": "peers",
    "MannWhitneyJudge": "judge",
    "Relative": "relative",
    "Sequential": "sequential",
    "Threshold": "threshold",
    "quantile_upper_bound": "sequential",
    "rate_upper_bound": "sequential",
}

__all__ = [
    "ArgoRule",
    "Decision",
    "Detector",
    "FlaggerRule",
    "MannWhitneyJudge",
    "Relative",
    "Sequential",
    "Threshold",
    "Verdict",
    "quantile_upper_bound",
    "rate_upper_bound",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
