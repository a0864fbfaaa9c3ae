"""Watch a release: read the plan's signals every interval, feed each trigger, and say when
to back out — with the evidence. Manual triggers, Alertmanager alerts and approvals arrive
through the store's trigger inbox, which is read on every tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backout.spec.models import Plan, Trigger
from backout.spec.templating import render_value
from backout.store import inbox
from backout.store.db import Store
from backout.telemetry import SOURCES, Reading, Sampler, SourceContext
from backout.triggers.alerts import matches
from backout.triggers.kinds import TRIGGERS, Baseline

if TYPE_CHECKING:  # detectors import scipy: they load only when a trigger is built
    from backout.telemetry.detectors.base import Decision, Detector

Note = Callable[..., Any]  # journal.append(kind, **data)
TICK_S = 0.05
MAX_PAUSE_S = 300.0  # no data for longer than this during a checkpoint is itself a reason


@dataclass(frozen=True)
class Fired:
    trigger: str
    kind: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "trigger_kind": self.kind,
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass
class _Rule:
    trigger: Trigger
    detector: Detector | None
    last: str = ""


@dataclass
class _Signal:
    sampler: Sampler
    interval: float
    due: float = 0.0
    last: Reading | None = None


@dataclass(frozen=True)
class WatchContext:
    store: Store
    service: str
    run_id: str
    scope: dict[str, Any]
    source_ctx: Callable[[float, float], SourceContext]  # (timeout, interval) -> context
    note: Note
    since: float  # inbox entries from this time on are for this run (its creation)


class Watcher:
    def __init__(self, plan: Plan, baseline: Baseline, ctx: WatchContext) -> None:
        self.plan, self.ctx = plan, ctx
        self.signals = {name: self._open(name) for name in self._used_signals()}
        self.rules = [_Rule(t, self._build(t, baseline)) for t in plan.triggers]
        self.since = ctx.since
        self.approvals: list[dict[str, Any]] = []

    def _used_signals(self) -> list[str]:
        names = [t.signal for t in self.plan.triggers if t.signal]
        names += [
            t.options.get(side)
            for t in self.plan.triggers
            if t.kind == "judge"
            for side in ("baseline", "canary")
        ]
        return sorted({n for n in names if isinstance(n, str) and n in self.plan.telemetry})

    def _open(self, name: str) -> _Signal:
        signal = self.plan.telemetry[name]
        source = SOURCES.get(signal.kind)
        options = source.Options.model_validate(render_value(signal.options, self.ctx.scope))
        interval = signal.interval or source.default_interval
        sampler = source.open(options, self.ctx.source_ctx(signal.timeout, interval))
        # the first reading should cover one interval, like every later one
        return _Signal(sampler, interval, due=time.monotonic() + interval)

    def _build(self, trigger: Trigger, baseline: Baseline) -> Detector | None:
        kind = TRIGGERS.get(trigger.kind)
        options = kind.Options.model_validate(trigger.options)
        return kind.build(options, trigger.name, trigger.signal or "", baseline)

    # --- the loop ------------------------------------------------------------------------
    def watch(
        self,
        hold: float,
        approval: Callable[[], bool] | None = None,
        approve_within: float = 3600.0,
    ) -> Fired | None:
        """Watch for ``hold`` seconds (and until approved, when asked); the first trigger to
        fire ends the watch. Time with no data under ``on_no_data: pause`` does not count."""
        counted, paused = 0.0, 0.0
        last = time.monotonic()
        started = last
        approved = approval is None
        while True:
            fired = self._tick()
            pausing = self._pausing()
            fired = fired or self._inbox()
            if fired:
                return fired
            now = time.monotonic()
            step, last = now - last, now
            if pausing:
                paused += step
                if paused > max(MAX_PAUSE_S, hold):
                    return Fired(
                        "no data",
                        "on_no_data",
                        f"no data for {paused:.0f}s while watching (on_no_data: pause)",
                        {"paused_s": round(paused, 1)},
                    )
            else:
                counted += step
            approved = approved or bool(approval and approval())
            if counted >= hold and approved:
                return None
            if counted >= hold and now - started > hold + approve_within:
                return Fired(
                    "approval",
                    "approve",
                    f"not approved within {approve_within:.0f}s of the checkpoint",
                    {},
                )
            time.sleep(TICK_S)

    def _tick(self) -> Fired | None:
        now = time.monotonic()
        for name, signal in self.signals.items():
            if now < signal.due:
                continue
            signal.due = now + signal.interval
            signal.last = signal.sampler.read()
            fired = self._feed(name, signal.last)
            if fired:
                return fired
        return None

    def _pausing(self) -> bool:
        """A trigger whose latest verdict is no_data under `on_no_data: pause` holds the
        checkpoint until data returns (between readings too, not only when one arrives)."""
        return any(
            rule.last == "no_data" and rule.trigger.on_no_data == "pause" for rule in self.rules
        )

    def _feed(self, name: str, reading: Reading) -> Fired | None:
        for rule in self.rules:
            decision = self._decide(rule, name, reading)
            if decision is None:
                continue
            self._record(rule, decision)
            if decision.verdict == "fail" or (
                decision.verdict == "no_data" and rule.trigger.on_no_data == "backout"
            ):
                return self._fire(rule, decision)
        return None

    @staticmethod
    def _decide(rule: _Rule, name: str, reading: Reading) -> Decision | None:
        trigger, detector = rule.trigger, rule.detector
        if detector is None:
            return None
        if trigger.kind == "judge":
            if name == trigger.options.get("baseline"):
                if reading.ok:
                    detector.observe_baseline(reading)  # type: ignore[attr-defined]
                return None
            return detector.update(reading) if name == trigger.options.get("canary") else None
        return detector.update(reading) if name == trigger.signal else None

    def _record(self, rule: _Rule, decision: Decision) -> None:
        """Journal a trigger's decision when its verdict changes, not on every reading."""
        if decision.verdict != rule.last:
            rule.last = decision.verdict
            self.ctx.note("trigger_evaluated", trigger=rule.trigger.name, **_decision(decision))

    def _fire(self, rule: _Rule, decision: Decision) -> Fired:
        return Fired(rule.trigger.name, rule.trigger.kind, decision.summary, _decision(decision))

    def _inbox(self) -> Fired | None:
        with self.ctx.store.session() as session:
            rows = inbox.take(session, self.ctx.service, self.ctx.run_id, self.since)
            entries = [(r.kind, r.reason, r.actor, dict(r.data)) for r in rows]
        for kind, reason, actor, data in entries:
            fired = self._entry(kind, reason, actor, data)
            if fired:
                return fired
        return None

    def _entry(self, kind: str, reason: str, actor: str, data: dict[str, Any]) -> Fired | None:
        if kind == "manual":
            return Fired(
                "manual",
                "manual",
                f"{actor} triggered a backout: {reason}",
                {"actor": actor, "reason": reason},
            )
        if kind == "rejected":
            self.ctx.note("alert_rejected", reason=reason, actor=actor)
            return None
        if kind == "approve":
            self.approvals.append(data)
            self.ctx.note("stage_approved", actor=actor, **data)
            return None
        if kind == "alertmanager":
            return self._alert(reason, data)
        return None

    def _alert(self, reason: str, data: dict[str, Any]) -> Fired | None:
        labels = data.get("labels", {})
        for rule in self.rules:
            if rule.trigger.kind == "alertmanager" and matches(rule.trigger.options, labels):
                return Fired(
                    rule.trigger.name,
                    "alertmanager",
                    f"alert {reason} is firing",
                    {"labels": labels, "annotations": data.get("annotations", {})},
                )
        self.ctx.note("alert_ignored", alert=reason, labels=labels)
        return None

    def approved(self, stage: int) -> bool:
        return any(a.get("stage") == stage for a in self.approvals)

    def summaries(self) -> dict[str, str]:
        return {rule.trigger.name: rule.last for rule in self.rules if rule.detector}


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "verdict": decision.verdict,
        "statistic": decision.statistic,
        "threshold": decision.threshold,
        "summary": decision.summary,
        "evidence": decision.evidence,
    }
