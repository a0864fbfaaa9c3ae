"""``relative``: worse than the baseline (the value recorded at snapshot time) by a share.

Plain words: the limit is ``baseline * (1 + worse_by)`` when higher is worse (errors,
latency) or ``baseline * (1 - worse_by)`` when lower is worse (throughput, success
ratio), and from there it behaves exactly like ``threshold`` with that limit and ``for``.
``min_change`` keeps a tiny baseline from making a tiny limit: with a baseline error ratio
of 0 any single error would be "infinitely worse", so the value must also be at least
``min_change`` away from the baseline in absolute terms.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from backout.telemetry.base import Reading
from backout.telemetry.detectors.base import Decision, fmt
from backout.telemetry.detectors.threshold import Threshold


def relative_limit(
    baseline: float, worse_by: float, direction: Literal["up", "down"], min_change: float = 0.0
) -> float:
    margin = max(abs(baseline) * worse_by, min_change)
    return baseline + margin if direction == "up" else baseline - margin


class Relative:
    def __init__(
        self,
        baseline_value: float,
        *,
        worse_by: float,
        direction: Literal["up", "down"] = "up",
        for_s: float = 0.0,
        min_change: float = 0.0,
        signal: str = "value",
    ) -> None:
        if worse_by < 0 or min_change < 0:
            raise ValueError("worse_by and min_change must not be negative")
        self.baseline_value = baseline_value
        self.worse_by = worse_by
        limit = relative_limit(baseline_value, worse_by, direction, min_change)
        sign = "+" if direction == "up" else "-"
        note = f"baseline {fmt(baseline_value)} {sign} {worse_by:.0%}"
        side = {"above": limit} if direction == "up" else {"below": limit}
        self.inner = Threshold(**side, for_s=for_s, signal=signal, note=note)

    def update(self, reading: Reading) -> Decision:
        decision = self.inner.update(reading)
        if decision.verdict == "no_data":
            return decision
        evidence = {**decision.evidence, "baseline": self.baseline_value, "worse_by": self.worse_by}
        return replace(decision, evidence=evidence)
