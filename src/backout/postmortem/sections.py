"""The report's sections as lines of text, each citing the journal events it rests on;
the templates only lay them out (Markdown or HTML)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from backout.postmortem.model import Point, Postmortem
from backout.postmortem.timeline import seconds

Line = dict[str, Any]  # {"text": str, "seqs": [int]}
HIDDEN_EVIDENCE = frozenset({"at", "test_started_at", "breach_started_at", "exceeds"})


def utc(at: float | None, precise: bool = True) -> str:
    if at is None:
        return "—"
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
        if precise
        else (moment.strftime("%Y-%m-%d %H:%M:%SZ"))
    )


def line(text: str, *seqs: int | None) -> Line:
    return {"text": text, "seqs": [s for s in seqs if s is not None]}


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- impact ------------------------------------------------------------------------------
def impact(pm: Postmortem) -> list[Line]:
    signal = pm.signal
    if signal is None or not signal.points:
        by_hand = " and the backout was started by hand" if pm.trigger is None else ""
        return [
            line(
                f"No telemetry was recorded for this run: no trigger reading of a signal is in "
                f"its journal{by_hand}. The impact on users is not known to backout."
            )
        ]
    named = f"{signal.name!r}" if signal.name else "the trigger's signal"
    lines = [
        line(
            f"Signal {named}, read by trigger {signal.trigger!r} ({signal.kind}) as its "
            f"{signal.measure}, limit {signal.limit_label}. The journal keeps a reading each "
            f"time the trigger's verdict changed: {len(signal.points)} reading(s)."
        ),
        _before(pm),
    ]
    m = pm.moments
    cut = m.backout_at or m.finished_at
    during = [p for p in signal.points if cut is None or p.at <= cut]
    after = [p for p in signal.points if cut is not None and p.at > cut]
    lines += _during(pm, during)
    if after:
        last = after[-1]
        lines.append(
            line(f"After: {_num(last.value)} ({last.verdict}) at {utc(last.at)}.", last.seq)
        )
    else:
        lines.append(
            line(
                "After: no reading of the signal was journalled after the backout began "
                "(the triggers stop watching then); the verify checks under Resolution show "
                "what was restored."
            )
        )
    return lines


def _before(pm: Postmortem) -> Line:
    base = pm.signal.baseline if pm.signal else None
    if not base or base.get("value") is None:
        return line("Before: the baseline snapshot recorded no reading of this signal.")
    counted = (
        f" ({base['events']} of {base['trials']} counted)" if base.get("trials") is not None else ""
    )
    return line(
        f"Before: {_num(base['value'])}{counted} while the good release was live "
        f"(baseline snapshot, {utc(base.get('at'), precise=False)})."
    )


def _during(pm: Postmortem, points: list[Point]) -> list[Line]:
    if not points:
        return [line("During: no reading of the signal was journalled before the backout.")]
    peak = max(points, key=lambda p: p.value)
    first_bad = next((p for p in points if p.verdict != "pass"), None)
    lines = [
        line(
            f"During: {len(points)} reading(s) from {utc(points[0].at)} to {utc(points[-1].at)}; "
            f"the highest {_num(peak.value)} at {utc(peak.at)}.",
            peak.seq,
        )
    ]
    if first_bad is not None:
        lines.append(
            line(
                f"First reading this trigger did not pass ({first_bad.verdict}): "
                f"{_num(first_bad.value)} at {utc(first_bad.at)}.",
                first_bad.seq,
            )
        )
    counts = pm.signal.counts if pm.signal else None
    if counts:
        lines.append(
            line(
                f"Affected, where the source counts them: {counts['events']} of "
                f"{counts['trials']} in the trigger's window at detection.",
                counts.get("seq"),
            )
        )
    return lines


# --- trigger and detection -----------------------------------------------------------------
def detection(pm: Postmortem) -> list[Line]:
    t = pm.trigger
    if t is None:
        who = pm.authors[0] if pm.authors else "someone"
        if pm.mode == "backout":
            return [line(f"No trigger fired: the backout was started by hand by {who}.")]
        return [line("No trigger fired during this run.")]
    lines = [
        line(
            f"Trigger {t.name!r} ({t.kind}) fired at {utc(pm.moments.detected_at)}: {t.summary}",
            t.seq,
        )
    ]
    shown = [
        f"{k} = {_num(v)}"
        for k, v in t.evidence.items()
        if k not in HIDDEN_EVIDENCE and not isinstance(v, dict | list) and v is not None
    ]
    if shown:
        lines.append(line("Evidence: " + "; ".join(shown), t.seq))
    return lines


def moments(pm: Postmortem) -> list[dict[str, Any]]:
    """The moments table: what, when (UTC), the journal event."""
    m = pm.moments
    rows = [
        ("run created", m.created_at, None),
        ("deploy started", m.deploy_at, None),
        ("release live", m.live_at, None),
        ("first sign (a trigger did not pass)", m.onset_at, m.onset_seq),
        ("detected (trigger fired)", m.detected_at, m.detected_seq),
        ("backout started", m.backout_at, None),
        ("restored (verified)", m.restored_at, m.finished_seq if m.restored_at else None),
        ("run finished", m.finished_at, m.finished_seq),
    ]
    return [{"what": w, "when": utc(at), "seq": seq} for w, at, seq in rows if at is not None]


def intervals(pm: Postmortem) -> list[Line]:
    m = pm.moments
    pairs = [
        ("release live → first sign", m.live_at, m.onset_at),
        ("first sign → detection", m.onset_at, m.detected_at),
        ("release live → detection", m.live_at, m.detected_at),
        ("detection → restored", m.detected_at, m.restored_at),
        ("release live → restored", m.live_at, m.restored_at),
    ]
    return [line(f"{name}: {seconds(b - a)}") for name, a, b in pairs if a is not None and b]


# --- resolution ---------------------------------------------------------------------------
def restore(pm: Postmortem) -> list[Line]:
    seq = pm.moments.finished_seq
    if pm.elapsed_s is None:
        return [line("The run has not finished: no time to restore yet.")]
    if pm.rto_met is None:
        verdict = "no RTO applies" if pm.rto_s is None else "not measured against the RTO"
    else:
        verdict = "within" if pm.rto_met else "OVER"
        verdict = f"{verdict} the plan's RTO of {seconds(pm.rto_s)}"
    lines = [
        line(f"Time to restore: {seconds(pm.elapsed_s)} from the backout's start, {verdict}.", seq)
    ]
    for h in pm.handoffs:
        lines.append(
            line(
                f"Handed over to disaster recovery: owner {h.get('owner')}"
                + (f", runbook {h['runbook']}" if h.get("runbook") else "")
                + f"; {h.get('outcome', '')}"
            )
        )
    return lines


def step_rows(pm: Postmortem) -> list[dict[str, Any]]:
    return [
        {
            "number": s.number,
            "name": s.name,
            "role": s.role,
            "status": s.status,
            "attempts": s.attempts,
            "started": utc(s.started_at),
            "duration": seconds(s.duration_s) if s.duration_s is not None else "—",
            "summary": s.summary,
            "seqs": s.seqs,
        }
        for s in pm.steps
    ]


def check_rows(pm: Postmortem) -> list[dict[str, Any]]:
    return [
        {
            "number": c.number,
            "name": c.name,
            "result": "—" if c.passed is None else "passed" if c.passed else "FAILED",
            "attempts": c.attempts,
            "took": seconds(c.took_s) if c.took_s is not None else "—",
            "within": seconds(c.within_s) if c.within_s else "—",
            "reason": c.reason,
            "seqs": c.seqs,
        }
        for c in pm.checks
    ]


def lessons(pm: Postmortem, section: str) -> list[Line]:
    return [line(item.text, *item.seqs) for item in pm.lessons if item.section == section]
