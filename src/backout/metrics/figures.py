"""The figures, computed from a :class:`~backout.metrics.facts.Dataset`: counts, ratios,
distributions (count, median, p90) and the DORA levels. docs/metrics.md defines each one;
:meth:`Figures.to_json` is the documented ``--json`` shape."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from backout.metrics import dora
from backout.metrics.facts import OUTCOMES, Dataset, RunFact
from backout.metrics.window import DAY, Window, iso

SCHEMA = 1  # the --json shape's version: a field removed or renamed bumps it


@dataclass(frozen=True)
class Distribution:
    """Durations in seconds: how many, their median and 90th percentile (linear
    interpolation between the closest ranks, as numpy's default and Excel's
    PERCENTILE.INC), their mean. None when there are none."""

    count: int
    median_s: float | None
    p90_s: float | None
    mean_s: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if not values:
            return cls(0, None, None, None)
        ordered = sorted(values)
        mean = math.fsum(ordered) / len(ordered)
        return cls(
            len(ordered),
            round(percentile(ordered, 50), 3),
            round(percentile(ordered, 90), 3),
            round(mean, 3),
        )


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile of sorted values: rank ``p/100 * (n - 1)``, interpolated
    linearly between the two closest ranks."""
    rank = p / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Frequency:
    per_day: float | None
    per_week: float | None
    deployment_days: int


@dataclass(frozen=True)
class Stability:
    """Deployments and their failures for one scope (every service, or one)."""

    deployments: int
    failed_deployments: int
    change_failure_rate: float | None
    unrestored: int  # failed deployments whose backout failed (or has not finished)
    recovery_deploy: Distribution  # deploy -> restored
    recovery_detection: Distribution  # detection -> restored
    time_to_detect: Distribution  # deploy -> first trigger
    backout_duration: Distribution  # backout started -> restored (verified)


@dataclass(frozen=True)
class ServiceFigures:
    service: str
    environment: str
    stability: Stability
    unplanned_backouts: int


@dataclass(frozen=True)
class PlanFreshness:
    plan: str
    last_passed_at: float | None
    days_since_pass: float | None


@dataclass(frozen=True)
class Rehearsals:
    total: int
    passed: int
    pass_rate: float | None
    plans: list[PlanFreshness]


@dataclass(frozen=True)
class Figures:
    window: Window
    filters: dict[str, str | None]
    runs: dict[str, int]  # outcome -> runs (rehearsal runs included, under their outcomes)
    modes: dict[str, int]  # mode -> runs
    stability: Stability
    in_progress: int  # deployments not finished when the window ends
    frequency: Frequency
    unplanned_backouts: int
    unplanned_restored: int
    time_to_first_update: Distribution
    rehearsals: Rehearsals
    dora: dict[str, dora.Level | None]
    services: list[ServiceFigures] = field(default_factory=list)

    @property
    def total_runs(self) -> int:
        return sum(self.runs.values())

    def to_json(self) -> dict[str, Any]:
        stability = asdict(self.stability)
        return {
            "schema": SCHEMA,
            "window": self.window.to_json(),
            "filters": self.filters,
            "runs": {"total": self.total_runs, "by_outcome": self.runs, "by_mode": self.modes},
            **stability,
            "in_progress": self.in_progress,
            "deployment_frequency": asdict(self.frequency),
            "unplanned_backouts": {
                "total": self.unplanned_backouts,
                "restored": self.unplanned_restored,
            },
            "time_to_first_update": asdict(self.time_to_first_update),
            "rehearsals": {
                "total": self.rehearsals.total,
                "passed": self.rehearsals.passed,
                "pass_rate": self.rehearsals.pass_rate,
                "plans": [
                    {
                        "plan": p.plan,
                        "last_passed_at": iso(p.last_passed_at),
                        "days_since_pass": p.days_since_pass,
                    }
                    for p in self.rehearsals.plans
                ],
            },
            "dora": self.dora,
            "services": [
                {
                    "service": s.service,
                    "environment": s.environment,
                    **asdict(s.stability),
                    "unplanned_backouts": s.unplanned_backouts,
                }
                for s in self.services
            ],
        }


def _spans(pairs: Iterable[tuple[float | None, float | None]]) -> list[float]:
    return [end - start for start, end in pairs if start is not None and end is not None]


def stability(runs: Sequence[RunFact]) -> Stability:
    deployed = [r for r in runs if r.is_deployment]
    failed = [r for r in deployed if r.failed_deployment]
    backouts = [r for r in runs if r.mode != "rehearsal" and r.restored_at is not None]
    return Stability(
        deployments=len(deployed),
        failed_deployments=len(failed),
        change_failure_rate=round(len(failed) / len(deployed), 6) if deployed else None,
        unrestored=sum(1 for r in failed if r.restored_at is None),
        recovery_deploy=Distribution.of(_spans((r.started_at, r.restored_at) for r in failed)),
        recovery_detection=Distribution.of(_spans((r.detection, r.restored_at) for r in failed)),
        time_to_detect=Distribution.of(_spans((r.started_at, r.detection) for r in failed)),
        backout_duration=Distribution.of(
            _spans((r.backout_began, r.restored_at) for r in backouts)
        ),
    )


def _frequency(deployed: Sequence[RunFact], window: Window) -> tuple[Frequency, set[int]]:
    days = dora.deployment_days((r.created_at for r in deployed), window.until)
    span = window.days
    if not span:
        return Frequency(None, None, len(days)), days
    per_day = len(deployed) / span
    return Frequency(round(per_day, 6), round(per_day * 7, 6), len(days)), days


def _rehearsals(data: Dataset) -> Rehearsals:
    passed = sum(1 for r in data.rehearsals if r.passed)
    total = len(data.rehearsals)
    plans = [
        PlanFreshness(
            plan,
            data.last_pass.get(plan),
            round((data.window.until - data.last_pass[plan]) / DAY, 3)
            if plan in data.last_pass
            else None,
        )
        for plan in data.plans
    ]
    return Rehearsals(total, passed, round(passed / total, 6) if total else None, plans)


def _services(runs: Sequence[RunFact]) -> list[ServiceFigures]:
    groups: dict[tuple[str, str], list[RunFact]] = defaultdict(list)
    for run in runs:
        if run.mode != "rehearsal":
            groups[(run.service, run.environment)].append(run)
    return [
        ServiceFigures(service, env, stability(group), sum(r.unplanned_backout for r in group))
        for (service, env), group in sorted(groups.items())
    ]


def summarize(data: Dataset) -> Figures:
    """Every figure for the dataset's window and filters."""
    production = [r for r in data.runs if r.mode != "rehearsal"]
    stable = stability(production)
    deployed = [r for r in production if r.is_deployment]
    frequency, days = _frequency(deployed, data.window)
    unplanned = [r for r in production if r.unplanned_backout]
    outcomes = Counter(r.outcome for r in data.runs)
    return Figures(
        window=data.window,
        filters=data.filters,
        runs={o: outcomes[o] for o in OUTCOMES if outcomes[o]},
        modes=dict(sorted(Counter(r.mode for r in data.runs).items())),
        stability=stable,
        in_progress=sum(1 for r in deployed if r.finished_at is None),
        frequency=frequency,
        unplanned_backouts=len(unplanned),
        unplanned_restored=sum(1 for r in unplanned if r.restored_at is not None),
        time_to_first_update=Distribution.of(list(data.first_updates.values())),
        rehearsals=_rehearsals(data),
        dora={
            "deployment_frequency": dora.frequency_level(days, data.window.days),
            "change_failure_rate": dora.change_failure_level(
                stable.failed_deployments, stable.deployments
            ),
            "recovery_time": dora.recovery_level(stable.recovery_deploy.median_s),
        },
        services=_services(production),
    )
