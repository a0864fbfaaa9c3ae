"""Read what the store knows about one run, in one read transaction, and fold it into a
:class:`~backout.postmortem.model.Postmortem`."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from backout.engine.baseline import TELEMETRY_KEY
from backout.engine.hooks import journal_hash
from backout.engine.layout import layout
from backout.engine.runner import empty_view, mode_of, plan_of
from backout.engine.view import RunView, fold
from backout.errors import UsageError
from backout.kernel.events import CHECK_EVENTS, Event, EventKind
from backout.kernel.states import RUN_TERMINAL
from backout.postmortem import story
from backout.postmortem.model import (
    CheckLine,
    Moments,
    Point,
    Postmortem,
    Seal,
    Signal,
    StepLine,
    Trigger,
)
from backout.postmortem.timeline import Namer, entries
from backout.redact import Redactor
from backout.spec.models import Plan
from backout.spec.secrets import read_secrets
from backout.store import audit, repo
from backout.store import changes as change_repo
from backout.store.db import Store
from backout.store.models import AuditRow, RunRow

AUDIT_LIMIT = 100_000  # audit records about one run: a run writes a handful


@dataclass(frozen=True)
class Records:
    """Everything read from the store for one report."""

    row: RunRow
    events: list[Event]
    audits: list[AuditRow]  # about the run (subject run:ID), oldest first
    head: AuditRow | None  # the chain's head then
    snapshot: dict[str, Any] | None  # the baseline snapshot: values, taken_at
    change_title: str | None


def read(store: Store, run_id: str) -> Records:
    """One read transaction: the journal and the audit position are of the same moment."""
    with store.session(read_only=True) as session:
        row = repo.get_run(session, run_id)
        events = repo.load_events(session, row.id)
        audits = audit.log(session, subject=f"run:{row.id}", limit=AUDIT_LIMIT)
        head = audit.head(session)
        snap = repo.get_snapshot(session, row.snapshot_id) if row.snapshot_id else None
        snapshot = {"values": dict(snap.values), "taken_at": snap.taken_at} if snap else None
        title = None
        if row.change_id is not None:
            title = change_repo.get_change(session, row.change_id).title
    return Records(row, events, audits, head, snapshot, title)


def seal_of(records: Records, now: float | None = None) -> Seal:
    cited = records.audits[-1] if records.audits else records.head
    return Seal(
        run_id=records.row.id,
        journal_sha256=journal_hash(records.events),
        journal_events=len(records.events),
        audit_seq=cited.seq if cited else None,
        audit_hash=cited.hash if cited else None,
        generated_at=time.time() if now is None else now,
    )


def gather(store: Store, run_id: str, now: float | None = None) -> Postmortem:
    return build(read(store, run_id), now)


def redactor_of(row: RunRow) -> Redactor:
    """The run's secrets, as many as can be read here (each from where the plan says): a
    report is drafted later, maybe elsewhere, so a secret that cannot be read is skipped;
    the journal itself was redacted when it was written."""
    plan, base_dir = plan_of(row)
    values: list[str] = []
    for name, secret in plan.secrets.items():
        with contextlib.suppress(UsageError):
            values += read_secrets({name: secret}, base_dir).values()
    return Redactor(values)


def build(records: Records, now: float | None = None) -> Postmortem:
    row, events = records.row, records.events
    plan, _ = plan_of(row)
    mode = mode_of(row)
    units = layout(plan, mode)
    view = fold(empty_view(row, plan), events)
    namer = Namer([u.name for u in units], [c.name for c in plan.verify])
    trigger = _trigger(events)
    moments = _moments(row, events, [u.index for u in units if u.role == "forward"])
    finished = _last(events, EventKind.RUN_FINISHED)
    fin = finished.data if finished else {}
    steps = _steps(view, events, [u.role for u in units])
    checks = _checks(view, events, plan)
    baseline_values = (records.snapshot or {}).get("values", {})
    pm = Postmortem(
        run_id=row.id,
        plan=row.plan,
        service=row.service,
        environment=str(row.plan_doc.get("environment") or ""),
        mode=mode,
        status=view.status.value,
        result=view.result,
        message=view.message,
        owner=plan.owner or "owner",
        change_id=row.change_id,
        change_title=records.change_title,
        release=row.plan_doc.get("release") or None,
        baseline_release=baseline_values.get("release"),
        plan_version=row.plan_version,
        authors=_authors(row, events, records.audits),
        in_progress=view.status not in RUN_TERMINAL,
        outcome="",
        moments=moments,
        trigger=trigger,
        signal=_signal(events, plan, trigger, records.snapshot),
        steps=steps,
        checks=checks,
        rto_s=fin.get("rto_s", plan.rto),
        elapsed_s=fin.get("elapsed_s"),
        rto_met=fin.get("rto_met"),
        resumes=[e.seq for e in events if e.kind == EventKind.RUN_RESUMED],
        timeline=entries(events, namer),
        lessons=[],
        seal=seal_of(records, now),
        handoffs=[dict(a.details) for a in records.audits if a.action == "run.handoff"],
    )
    return story.told(pm, events)


def _last(events: list[Event], kind: str) -> Event | None:
    return next((e for e in reversed(events) if e.kind == kind), None)


def _first(events: list[Event], kind: str) -> Event | None:
    return next((e for e in events if e.kind == kind), None)


def _authors(row: RunRow, events: list[Event], audits: list[AuditRow]) -> list[str]:
    """Who acted on the run: its creator, whoever resumed, decided or approved, and the
    actors of its audit records; in order of first appearance."""
    seen = [row.actor]
    seen += [str(e.data["actor"]) for e in events if e.data.get("actor")]
    seen += [a.actor for a in audits]
    return list(dict.fromkeys(seen))


def _trigger(events: list[Event]) -> Trigger | None:
    fired = _first(events, EventKind.TRIGGER_FIRED)
    reason = fired.data if fired else None
    if reason is None:
        started = _first(events, EventKind.BACKOUT_STARTED)
        reason = started.data if started and started.data.get("trigger") else None
    if reason is None:
        return None
    decision = reason.get("evidence") or {}
    inner = decision.get("evidence", decision) if isinstance(decision, dict) else {}
    return Trigger(
        name=str(reason.get("trigger")),
        kind=str(reason.get("trigger_kind") or "?"),
        summary=str(reason.get("summary") or ""),
        evidence=audit.clean_details(inner if isinstance(inner, dict) else {}),
        seq=fired.seq if fired else None,
    )


def _moments(row: RunRow, events: list[Event], forward: list[int]) -> Moments:
    backout = _first(events, EventKind.BACKOUT_STARTED)
    backout_at = backout.at if backout else None
    started = _first(events, EventKind.RUN_STARTED)
    if backout is None and mode_of(row) == "backout" and started is not None:
        backout_at = started.at  # `backout run`: the backout is the whole run
    deploy = next(
        (e for e in events if e.kind == EventKind.STEP_STARTED and e.step in forward), None
    )
    live = [
        e
        for e in events
        if e.kind == EventKind.STEP_FINISHED
        and e.step in forward
        and (backout_at is None or e.at <= backout_at)
    ]
    onset = next(
        (
            e
            for e in events
            if e.kind == EventKind.TRIGGER_EVALUATED and e.data.get("verdict") not in ("pass", None)
        ),
        None,
    )
    fired = _first(events, EventKind.TRIGGER_FIRED)
    finished = _last(events, EventKind.RUN_FINISHED)
    restored = (
        finished
        if finished
        and finished.data.get("outcome") == "succeeded"
        and finished.data.get("result") in (None, "backed_out", "rehearsed")
        and (backout_at is not None)
        else None
    )
    return Moments(
        created_at=row.created_at,
        deploy_at=deploy.at if deploy else None,
        live_at=live[-1].at if live else None,
        onset_at=onset.at if onset else None,
        onset_seq=onset.seq if onset else None,
        detected_at=fired.at if fired else None,
        detected_seq=fired.seq if fired else None,
        backout_at=backout_at,
        restored_at=restored.at if restored else None,
        finished_at=finished.at if finished else None,
        finished_seq=finished.seq if finished else None,
    )


def _seqs_by(events: list[Event], checks: bool) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for e in events:
        if e.step is not None and (e.kind in CHECK_EVENTS) == checks:
            found.setdefault(e.step, []).append(e.seq)
    return found


def _steps(view: RunView, events: list[Event], roles: list[str]) -> list[StepLine]:
    seqs = _seqs_by(events, checks=False)
    return [
        StepLine(
            number=s.index + 1,
            name=s.name,
            role=roles[s.index] if s.index < len(roles) else "backout",
            status=s.status.value,
            attempts=s.attempts,
            started_at=s.started_at,
            finished_at=s.finished_at,
            duration_s=s.duration_s,
            summary=s.summary,
            seqs=seqs.get(s.index, []),
        )
        for s in view.steps
    ]


def _checks(view: RunView, events: list[Event], plan: Plan) -> list[CheckLine]:
    seqs = _seqs_by(events, checks=True)
    return [
        CheckLine(
            number=c.index + 1,
            name=c.name,
            passed=c.passed,
            reason=c.reason,
            attempts=c.attempts,
            started_at=c.started_at,
            finished_at=c.finished_at,
            within_s=float(plan.verify[c.index].within),
            seqs=seqs.get(c.index, []),
        )
        for c in view.checks
    ]


# --- the trigger's signal ----------------------------------------------------------------
def reading(data: dict[str, Any]) -> tuple[float, float | None, str, str] | None:
    """(value, limit, what the value is, how the limit reads) from a trigger verdict's data
    (a ``trigger_evaluated`` event, or the decision inside ``trigger_fired``)."""
    inner = data.get("evidence") or {}
    if isinstance(inner.get("value"), int | float) and ("above" in inner or "below" in inner):
        side = "above" if "above" in inner else "below"
        limit = inner.get(side)
        return float(inner["value"]), _num(limit), "value", f"{side} {_short(limit)}"
    if isinstance(inner.get("observed_rate"), int | float):
        p_null = _num(inner.get("p_null"))
        return (
            float(inner["observed_rate"]),
            p_null,
            "observed rate",
            f"rate tested {_short(p_null)}",
        )
    if isinstance(data.get("statistic"), int | float):
        limit = _num(data.get("threshold"))
        return float(data["statistic"]), limit, "statistic", f"threshold {_short(limit)}"
    return None


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _signal(
    events: list[Event], plan: Plan, trigger: Trigger | None, snapshot: dict[str, Any] | None
) -> Signal | None:
    evaluated = [e for e in events if e.kind == EventKind.TRIGGER_EVALUATED]
    name = trigger.name if trigger else (evaluated[0].data.get("trigger") if evaluated else None)
    if name is None:
        return None
    points, measure, limit_label = [], "value", ""
    for e in events:
        data = e.data if e.kind == EventKind.TRIGGER_EVALUATED else None
        if e.kind == EventKind.TRIGGER_FIRED and isinstance(e.data.get("evidence"), dict):
            data = e.data["evidence"]
        if data is None or e.data.get("trigger") != name:
            continue
        found = reading(data)
        if found is not None:
            value, limit, measure, limit_label = found
            points.append(Point(e.seq, e.at, value, limit, str(data.get("verdict", "fail"))))
    spec = next((t for t in plan.triggers if t.name == name), None)
    signal_name = spec.signal if spec and spec.signal else ""
    fired = _first(events, EventKind.TRIGGER_FIRED)
    counts = None
    if fired is not None and trigger is not None:
        ev = trigger.evidence
        if isinstance(ev.get("events"), int) and isinstance(ev.get("trials"), int):
            counts = {"events": ev["events"], "trials": ev["trials"], "seq": fired.seq}
    return Signal(
        trigger=str(name),
        kind=trigger.kind if trigger else str(evaluated[0].data.get("trigger_kind") or ""),
        name=signal_name,
        measure=measure,
        limit_label=limit_label,
        points=points,
        baseline=_baseline_reading(snapshot, signal_name),
        counts=counts,
    )


def _baseline_reading(snapshot: dict[str, Any] | None, signal: str) -> dict[str, Any] | None:
    """The snapshot's reading of ``signal`` (taken while the good release was live)."""
    if not snapshot or not signal:
        return None
    try:
        raw = json.loads(snapshot["values"].get(TELEMETRY_KEY, "{}"))
    except (TypeError, ValueError):
        return None
    found = raw.get(signal) if isinstance(raw, dict) else None
    if not isinstance(found, dict):
        return None
    return {
        "value": found.get("value"),
        "events": found.get("events"),
        "trials": found.get("trials"),
        "status": found.get("status"),
        "at": found.get("at") or snapshot.get("taken_at"),
    }
