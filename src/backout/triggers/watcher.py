"""Watch a release: read the plan's signals every interval, feed each trigger, and say when
to back out — with the evidence. Manual triggers, Alertmanager alerts and approvals arrive
through the store's trigger inbox. Whoever writes an entry rings the service's doorbell
(store/notices.py): a listener in this process at once, another process through
PostgreSQL's NOTIFY (on SQLite, the process's watch of the file's commits); the watch then
reads the inbox without waiting for its next tick. Without notices from other processes
(an in-memory store, a lost connection) the inbox is also read every tick (``TICK_S``);
with them, every ``POLL_PUSHED_S`` as a fallback.

In a process watching many deployments (``backout watch`` with several plans), the signals
are not read here but subscribed to the process's :class:`~backout.telemetry.hub.TelemetryHub`,
which hands each reading over and rings the doorbell; the watch then waits for its
doorbell only (the hub also looks at the inbox for all the watches at once), and measures
each reading's evaluation lag: from when it was due to when its detectors had it.

Every alert that arrives is journalled, acted on or not. An alert acts at most once per
service (its fingerprint and startsAt are claimed in the store), and never when it started
before this run was created: the release being watched cannot have caused it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate

from backout import heap
from backout.kernel.events import EventKind
from backout.spec.models import Plan, Trigger
from backout.spec.templating import render_value
from backout.stop import STOP, Stopped
from backout.store import inbox, notices
from backout.store.db import Store
from backout.store.warm import warm_alert_path
from backout.telemetry import SOURCES, Reading, Sampler, SourceContext
from backout.triggers.alerts import matches
from backout.triggers.kinds import TRIGGERS, Baseline

if TYPE_CHECKING:  # detectors import scipy: they load only when a trigger is built
    from sqlalchemy.orm import Session

    from backout.telemetry.detectors.base import Decision, Detector
    from backout.telemetry.hub import Subscription, TelemetryHub

Note = Callable[Concatenate[EventKind, ...], object]  # journal.append(kind, **data)
Noted = Callable[[], object]  # a note to journal once the inbox is read (its kind named)
TICK_S = 0.05
POLL_PUSHED_S = 1.0  # with notices from other processes, the inbox is read this often too
MAX_PAUSE_S = 300.0  # no data for longer than this during a checkpoint is itself a reason
HUB_WAIT_S = 5.0  # with a hub, the longest a watch sleeps between two looks at its clock
READING = "reading"  # why a watch's doorbell rang: the hub handed a reading over
# after each reading a watch evaluated: its lag (seconds) and the triggers it reached
Lag = Callable[[float, tuple[str, ...]], object]


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
    sampler: Sampler | None  # None: the hub reads it (subscription)
    interval: float
    due: float = 0.0
    last: Reading | None = None
    subscription: Subscription | None = None


@dataclass(frozen=True)
class WatchContext:
    store: Store
    service: str
    run_id: str
    scope: dict[str, Any]
    source_ctx: Callable[[float, float], SourceContext]  # (timeout, interval) -> context
    note: Note
    since: float  # inbox entries from this time on are for this run (its creation)
    # a rehearsal's faults may replace a reading (a signal with no data, a source erroring)
    tamper: Callable[[str, Reading], Reading] | None = None
    hub: TelemetryHub | None = None  # a process watching many: the hub reads the signals
    lag: Lag | None = None  # each reading's evaluation lag and the triggers it reached


class Watcher:
    def __init__(self, plan: Plan, baseline: Baseline, ctx: WatchContext) -> None:
        self.plan, self.ctx = plan, ctx
        self._arrivals: deque[tuple[str, Reading, float]] = deque()
        self._bell: notices.Doorbell | None = None  # while watching (with a hub)
        self.signals = {name: self._open(name) for name in self._used_signals()}
        self.rules = [_Rule(t, self._build(t, baseline)) for t in plan.triggers]
        self.since = ctx.since
        self.approvals: list[dict[str, Any]] = []
        self.acting = True  # until the watch fires or ends: then nothing acts any more
        self._rung = True  # read the inbox at once when the watch starts
        self._read_at = 0.0  # when the inbox was last read (monotonic)
        self._watching = 0.0  # when the current watch began (monotonic)
        self._evaluated: list[str] = []  # the triggers the reading being fed reached

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
        source_ctx = self.ctx.source_ctx(signal.timeout, interval)
        if self.ctx.hub is not None:
            deliver = lambda reading, due: self._arrived(name, reading, due)  # noqa: E731
            subscription = self.ctx.hub.subscribe(
                signal.kind, options, source_ctx, interval, deliver
            )
            return _Signal(None, interval, subscription=subscription)
        sampler = source.open(options, source_ctx)
        # the first reading should cover one interval, like every later one
        return _Signal(sampler, interval, due=time.monotonic() + interval)

    def _arrived(self, name: str, reading: Reading, due: float) -> None:
        """From the hub's thread: keep a reading for the watch (none between watches)."""
        bell = self._bell
        if bell is not None:
            self._arrivals.append((name, reading, due))
            bell.ring(READING)

    def close(self) -> None:
        """End the hub's subscriptions (a watch reading its signals itself has none)."""
        hub = self.ctx.hub
        for signal in self.signals.values():
            if hub is not None and signal.subscription is not None:
                hub.unsubscribe(signal.subscription)
                signal.subscription = None

    def _build(self, trigger: Trigger, baseline: Baseline) -> Detector | None:
        kind = TRIGGERS.get(trigger.kind)
        options = kind.Options.model_validate(trigger.options)
        return kind.build(options, trigger.name, trigger.signal or "", baseline)

    def ready(self) -> None:
        """Before the watch says it watches: the reads an alert makes, compiled now, and
        the start-up's objects out of the cycle collector's way (:mod:`backout.heap`)."""
        warm_alert_path(self.ctx.store, self.ctx.run_id, self.since)
        heap.settle()

    # --- the loop ------------------------------------------------------------------------
    def watch(
        self,
        hold: float,
        approval: Callable[[], bool] | None = None,
        approve_within: float = 3600.0,
    ) -> Fired | None:
        """Watch for ``hold`` seconds (and until approved, when asked); the first trigger to
        fire ends the watch. Time with no data under ``on_no_data: pause`` does not count."""
        engine = self.ctx.store.engine
        with notices.doorbell(engine, notices.INBOX, self.ctx.service) as bell:
            self._bell, self._watching = bell, time.monotonic()
            try:
                return self._watch(hold, approval, approve_within, bell)
            finally:
                self._bell = None
                self._arrivals.clear()

    def _watch(
        self,
        hold: float,
        approval: Callable[[], bool] | None,
        approve_within: float,
        bell: notices.Doorbell,
    ) -> Fired | None:
        counted, paused = 0.0, 0.0
        last = time.monotonic()
        started = last
        approved = approval is None
        while True:
            fired = self._tick()
            pausing = self._pausing()
            fired = fired or self._inbox_if_due(bell)
            if fired:
                self.acting = False
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
            if self.ctx.hub is None:
                self._rung = bell.wait(TICK_S) or self._rung
            else:
                left = (max(MAX_PAUSE_S, hold) - paused) if pausing else hold - counted
                if counted >= hold:  # waiting for an approval: until it is too late
                    left = hold + approve_within - (now - started)
                if bell.wait(min(HUB_WAIT_S, max(left, 0.001))):
                    self._rung = bool(bell.reasons() - {READING}) or self._rung
            if STOP.requested:  # a stop ends the watch at once: watching changes nothing
                raise Stopped(STOP.signum)

    def _tick(self) -> Fired | None:
        if self.ctx.hub is not None:
            return self._arrived_readings()
        now = time.monotonic()
        for name, signal in self.signals.items():
            if now < signal.due or signal.sampler is None:
                continue
            # a reading due while nothing watched (between a deploy's checkpoints) was due
            # when the watch began: its lag is the watch's, not the steps'
            due, signal.due = max(signal.due, self._watching), now + signal.interval
            fired = self._measured(name, signal, signal.sampler.read(), due)
            if fired:
                return fired
        return None

    def _arrived_readings(self) -> Fired | None:
        """Feed what the hub handed over, in order; the first to fire ends the watch."""
        while self._arrivals:
            name, reading, due = self._arrivals.popleft()
            fired = self._measured(name, self.signals[name], reading, due)
            if fired:
                return fired
        return None

    def _measured(self, name: str, signal: _Signal, reading: Reading, due: float) -> Fired | None:
        """Feed a reading, then tell ``ctx.lag`` how late the triggers had it, and which."""
        self._evaluated.clear()
        fired = self._take(name, signal, reading)
        if self.ctx.lag is not None:
            self.ctx.lag(time.monotonic() - due, tuple(self._evaluated))
        return fired

    def _take(self, name: str, signal: _Signal, reading: Reading) -> Fired | None:
        signal.last = self.ctx.tamper(name, reading) if self.ctx.tamper else reading
        return self._feed(name, signal.last)

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
            self._evaluated.append(rule.trigger.name)
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
            self.ctx.note(
                EventKind.TRIGGER_EVALUATED, trigger=rule.trigger.name, **_decision(decision)
            )

    def _fire(self, rule: _Rule, decision: Decision) -> Fired:
        return Fired(rule.trigger.name, rule.trigger.kind, decision.summary, _decision(decision))

    def _inbox_if_due(self, bell: notices.Doorbell) -> Fired | None:
        """Read the inbox when the doorbell rang, or when the fallback poll is due."""
        now = time.monotonic()
        every = POLL_PUSHED_S if bell.pushed else TICK_S
        if self.ctx.hub is not None:  # the hub looks at the inbox for every watch at once
            every = float("inf")
        if not self._rung and now - self._read_at < every:
            return None
        first = self._read_at == 0.0  # the watch's first read: a look, nothing rang yet
        rung, self._rung, self._read_at = self._rung, False, now
        return self._inbox(look_first=first or not rung)

    def _inbox(self, look_first: bool = True) -> Fired | None:
        """Consume every waiting entry: the first to fire wins, and the rest are still
        journalled (a webhook may carry several alerts, HA members deliver at once). The
        entries are taken and an alert that acts is claimed in one transaction; the notes
        are journalled after it. That transaction need not wait for the disk: the journal
        write that follows it does, and makes it durable too; lost in a power cut before,
        the entries are simply read again.

        A poll (``look_first``) looks before it takes: most polls find nothing, and a look
        takes no write lock on SQLite. A ring says an entry came: it is taken at once."""
        store = self.ctx.store
        if look_first:
            with store.session(read_only=True) as session:
                if not inbox.waiting(session, self.ctx.service, self.ctx.run_id, self.since):
                    return None
        with store.session(synced=False) as session:
            rows = inbox.take(session, self.ctx.service, self.ctx.run_id, self.since)
            entries = [(r.kind, r.reason, r.actor, dict(r.data)) for r in rows]
            outcomes = [self._entry(session, *entry) for entry in entries]
        first: Fired | None = None
        for outcome in outcomes:
            if isinstance(outcome, Fired):
                first = first or outcome
            elif outcome is not None:
                outcome()
        return first

    def drain(self) -> None:
        """Journal what reached the inbox after the watch ended (while the run backs out):
        copies of the alert that fired, other alerts, rejected requests. Nothing acts now."""
        self.acting = False
        self._inbox()

    def _entry(
        self, session: Session, kind: str, reason: str, actor: str, data: dict[str, Any]
    ) -> Fired | Noted | None:
        """What one inbox entry does: fire (the first to do so stops all acting), or a note."""
        if kind == "manual":
            return self._manual(reason, actor)
        if kind == "rejected":
            return lambda: self.ctx.note(
                EventKind.ALERT_REJECTED, reason=reason, actor=actor, **data
            )
        if kind == "approve":
            self.approvals.append(data)
            return lambda: self.ctx.note(EventKind.STAGE_APPROVED, actor=actor, **data)
        if kind == "alertmanager":
            return self._alert(session, reason, data)
        return None

    def _manual(self, reason: str, actor: str) -> Fired | Noted:
        if not self.acting:
            message = f"{actor} asked for a backout while one was running: {reason}"
            return lambda: self.ctx.note(EventKind.WARNING, message=message)
        self.acting = False
        return Fired(
            "manual",
            "manual",
            f"{actor} triggered a backout: {reason}",
            {"actor": actor, "reason": reason},
        )

    # --- Alertmanager ----------------------------------------------------------------------
    def _alert(self, session: Session, name: str, data: dict[str, Any]) -> Fired | Noted | None:
        rule = self._rule_for(data.get("labels", {}))
        why = self._why_not(session, data, rule)
        if why is not None:
            return self._ignored(name, data, *why)
        return self._act(session, rule, name, data) if rule else None

    def _rule_for(self, labels: dict[str, str]) -> _Rule | None:
        """The first `alertmanager:` trigger whose matchers the labels satisfy."""
        for rule in self.rules:
            if rule.trigger.kind == "alertmanager" and matches(rule.trigger.options, labels):
                return rule
        return None

    def _why_not(
        self, session: Session, data: dict[str, Any], rule: _Rule | None
    ) -> tuple[str, str] | None:
        """Why this alert does not back out, as (code, plain words); None if it does."""
        if data.get("status") == "resolved":
            return "resolved", "a resolved notification never starts a backout"
        if rule is None:
            return "no_trigger", "no `alertmanager:` trigger matches its labels"
        acted = inbox.acted_on(session, self.ctx.service, _key(data))
        earlier = acted.run_id if acted else None
        # the same run may see its own claim again after a crash before it backed out
        if earlier is not None and (earlier != self.ctx.run_id or not self.acting):
            return "duplicate", (
                f"a copy of the alert that already made run {earlier} back out "
                "(Alertmanager delivers at least once, each HA member on its own)"
            )
        starts = float(data.get("starts_ts", self.ctx.since))
        if starts < self.ctx.since:
            return "predates_release", (
                f"it started at {_utc(starts)}, before this run began at {_utc(self.ctx.since)}: "
                "the release it watches did not cause it"
            )
        if not self.acting:
            return "after_trigger", "the run had already decided to back out when it arrived"
        return None

    def _act(self, session: Session, rule: _Rule, name: str, data: dict[str, Any]) -> Fired | Noted:
        """Claim the alert for this run first: a copy consumed elsewhere at the same moment
        (another member's delivery to another run) loses the race and acts nowhere."""
        claim = inbox.claim_alert(session, self.ctx.service, _key(data), name, self.ctx.run_id)
        if claim.run_id != self.ctx.run_id:
            return self._ignored(name, data, "duplicate", f"run {claim.run_id} acted on it first")
        self.acting = False
        return Fired(rule.trigger.name, "alertmanager", f"alert {name} is firing", _shown(data))

    def _ignored(self, name: str, data: dict[str, Any], why: str, reason: str) -> Noted:
        shown = _shown(data)
        return lambda: self.ctx.note(
            EventKind.ALERT_IGNORED, alert=name, why=why, reason=reason, **shown
        )

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


def _key(data: dict[str, Any]) -> tuple[str, str]:
    return str(data.get("fingerprint", "")), str(data.get("starts_at", ""))


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    """What the journal keeps of an alert: enough to find it in Alertmanager again."""
    keys = ("status", "labels", "annotations", "fingerprint", "starts_at", "delivered_by")
    return {key: data[key] for key in keys if key in data}


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
