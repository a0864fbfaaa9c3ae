"""The figures, computed from a :class:`~backout.metrics.facts.Dataset`: counts, ratios,
distributions (count, median, p90) and the DORA levels. docs/metrics.md defines each one;
:meth:`Figures.to_json` is the documented ``--json`` shape."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from operator import attrgetter
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


@dataclass
class _Tally:
    """A scope's deployments and durations, read off its runs in one pass. Scopes add up:
    every service's tallies together are the whole window's (a distribution depends only
    on its values, not their order)."""

    deployments: int = 0
    failed: int = 0
    unrestored: int = 0
    in_progress: int = 0  # deployments not finished when the window ends
    unplanned: int = 0
    unplanned_restored: int = 0
    deployed_at: list[float] = field(default_factory=list)
    recovery_deploy: list[float] = field(default_factory=list)  # deploy -> restored
    recovery_detection: list[float] = field(default_factory=list)  # detection -> restored
    time_to_detect: list[float] = field(default_factory=list)  # deploy -> first trigger
    backout_duration: list[float] = field(default_factory=list)  # backout -> restored

    @classmethod
    def of(cls, runs: Iterable[RunFact]) -> _Tally:
        t = cls()
        deployed_at, backout_duration = t.deployed_at, t.backout_duration
        recovery_deploy, recovery_detection = t.recovery_deploy, t.recovery_detection
        time_to_detect = t.time_to_detect
        for r in runs:
            restored = r.restored_at
            if r.unplanned_backout:
                t.unplanned += 1
                t.unplanned_restored += restored is not None
            if restored is not None and r.mode != "rehearsal":
                backout_duration.append(restored - r.backout_began)
            if not r.is_deployment:
                continue
            deployed_at.append(r.created_at)
            t.in_progress += r.finished_at is None
            if not r.failed_deployment:
                continue
            t.failed += 1
            detection = r.detection
            if detection is not None:
                time_to_detect.append(detection - r.started_at)
            if restored is None:
                t.unrestored += 1
                continue
            recovery_deploy.append(restored - r.started_at)
            if detection is not None:
                recovery_detection.append(restored - detection)
        t.deployments = len(deployed_at)
        return t

    @classmethod
    def total(cls, tallies: Iterable[_Tally]) -> _Tally:
        t = cls()
        for part in tallies:
            t.failed += part.failed
            t.unrestored += part.unrestored
            t.in_progress += part.in_progress
            t.unplanned += part.unplanned
            t.unplanned_restored += part.unplanned_restored
            t.deployed_at += part.deployed_at
            t.recovery_deploy += part.recovery_deploy
            t.recovery_detection += part.recovery_detection
            t.time_to_detect += part.time_to_detect
            t.backout_duration += part.backout_duration
        t.deployments = len(t.deployed_at)
        return t

    def stability(self) -> Stability:
        deployed, failed = self.deployments, self.failed
        return Stability(
            deployments=deployed,
            failed_deployments=failed,
            change_failure_rate=round(failed / deployed, 6) if deployed else None,
            unrestored=self.unrestored,
            recovery_deploy=Distribution.of(self.recovery_deploy),
            recovery_detection=Distribution.of(self.recovery_detection),
            time_to_detect=Distribution.of(self.time_to_detect),
            backout_duration=Distribution.of(self.backout_duration),
        )


def stability(runs: Iterable[RunFact]) -> Stability:
    """Deployments, their failures and the durations among ``runs`` (a rehearsal's backout
    is not counted among the backout durations)."""
    return _Tally.of(runs).stability()


def _frequency(deployed_at: Sequence[float], window: Window) -> tuple[Frequency, set[int]]:
    days = dora.deployment_days(deployed_at, window.until)
    span = window.days
    if not span:
        return Frequency(None, None, len(days)), days
    per_day = len(deployed_at) / span
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


def summarize(data: Dataset) -> Figures:
    """Every figure for the dataset's window and filters."""
    groups: dict[tuple[str, str], list[RunFact]] = defaultdict(list)
    for run in data.runs:
        if run.mode != "rehearsal":
            groups[(run.service, run.environment)].append(run)
    services = {where: _Tally.of(group) for where, group in sorted(groups.items())}
    every = _Tally.total(services.values())
    stable = every.stability()
    frequency, days = _frequency(every.deployed_at, data.window)
    outcomes = Counter(map(attrgetter("outcome"), data.runs))
    return Figures(
        window=data.window,
        filters=data.filters,
        runs={o: outcomes[o] for o in OUTCOMES if outcomes[o]},
        modes=dict(sorted(Counter(map(attrgetter("mode"), data.runs)).items())),
        stability=stable,
        in_progress=every.in_progress,
        frequency=frequency,
        unplanned_backouts=every.unplanned,
        unplanned_restored=every.unplanned_restored,
        time_to_first_update=Distribution.of(list(data.first_updates.values())),
        rehearsals=_rehearsals(data),
        dora={
            "deployment_frequency": dora.frequency_level(days, data.window.days),
            "change_failure_rate": dora.change_failure_level(
                stable.failed_deployments, stable.deployments
            ),
            "recovery_time": dora.recovery_level(stable.recovery_deploy.median_s),
        },
        services=[
            ServiceFigures(service, environment, tally.stability(), tally.unplanned)
            for (service, environment), tally in services.items()
        ],
    )
