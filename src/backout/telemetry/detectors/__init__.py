"""Triggers' decision rules: each turns a stream of readings into verdicts with evidence."""

from __future__ import annotations

from backout.telemetry.detectors.base import Decision, Detector, Verdict
from backout.telemetry.detectors.judge import MannWhitneyJudge
from backout.telemetry.detectors.peers import ArgoRule, FlaggerRule
from backout.telemetry.detectors.relative import Relative
from backout.telemetry.detectors.sequential import (
    Sequential,
    quantile_upper_bound,
    rate_upper_bound,
)
from backout.telemetry.detectors.threshold import Threshold

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
