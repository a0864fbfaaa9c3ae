"""Risk computed from the plan itself, shown beside the risk a requester gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from backout.spec.models import Plan, Risk

LEVELS: tuple[str, ...] = get_args(Risk)  # low, medium, high, critical


@dataclass(frozen=True)
class Assessment:
    level: str
    reasons: list[str]


def assess(plan: Plan) -> Assessment:
    """Start from the plan's ``risk:``; each gap in the way back raises it one level."""
    score = LEVELS.index(plan.risk)
    reasons = [f"the plan says {plan.risk}"]
    unsafe = [s.name for s in plan.steps if not s.idempotent]
    if unsafe:
        score += 1
        reasons.append(
            f"{len(unsafe)} step(s) are not idempotent and cannot be safely re-run: "
            + ", ".join(repr(n) for n in unsafe[:3])
        )
    if not plan.verify:
        score += 1
        reasons.append("no verify checks: nothing proves the backout worked")
    if plan.rto is None:
        reasons.append("no rto: the backout has no time budget")
    return Assessment(LEVELS[min(score, len(LEVELS) - 1)], reasons)
