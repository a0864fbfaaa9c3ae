"""`backout explain`: why a run did what it did, in plain words, from its journal."""

from __future__ import annotations

import datetime as dt
from typing import Any

from backout.kernel.events import Event, EventKind, describe
from backout.reports import RunReport


def _at(at: float) -> str:
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%H:%M:%S")


def _evidence(data: dict[str, Any]) -> str:
    evidence = data.get("evidence") or {}
    inner = evidence.get("evidence", evidence) if isinstance(evidence, dict) else {}
    parts = [f"{k} = {v}" for k, v in inner.items() if not isinstance(v, dict | list)]
    return "; ".join(parts[:8])


_INDENT = "\n          "


def _pairs(values: Any) -> str:
    if not isinstance(values, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _alert(data: dict[str, Any]) -> str:
    """An Alertmanager alert's evidence: its labels and annotations, and which firing it was
    (the fingerprint and start find it in Alertmanager; who delivered it, in an HA set)."""
    lines = [
        f"{name}: {text}"
        for name, text in (
            ("labels", _pairs(data.get("labels"))),
            ("annotations", _pairs(data.get("annotations"))),
        )
        if text
    ]
    identity = ", ".join(
        f"{label} {data[key]}"
        for key, label in (
            ("fingerprint", "fingerprint"),
            ("starts_at", "started"),
            ("delivered_by", "delivered by"),
        )
        if data.get(key)
    )
    if identity:
        lines.append(identity)
    return "".join(_INDENT + line for line in lines)


def _fired(event: Event) -> str:
    data = event.data
    head = (
        f"{_at(event.at)}  FIRED: {data['trigger']!r} ({data.get('trigger_kind')}): "
        f"{data['summary']}"
    )
    if data.get("trigger_kind") == "alertmanager":
        return head + _alert(data.get("evidence") or {})
    evidence = _evidence(data)
    return head + (f"{_INDENT}evidence: {evidence}" if evidence else "")


def _ignored(event: Event) -> str:
    data = event.data
    why = data.get("why") or "no_trigger"
    reason = data.get("reason") or "no `alertmanager:` trigger matches its labels"
    head = f"{_at(event.at)}  alert {data.get('alert')!r} not acted on ({why}): {reason}"
    return head + _alert(data)


# events told in the table's words, with their data
_NOTED = frozenset(
    {
        EventKind.STAGE_APPROVED,
        EventKind.PROMOTED,
        EventKind.RUN_NEEDS_ATTENTION,
        EventKind.RUN_ABANDONED,
    }
)


def _line(event: Event, names: list[str]) -> str | None:
    data, when = event.data, _at(event.at)
    step = names[event.step] if event.step is not None and event.step < len(names) else ""
    if event.kind == EventKind.CHECKPOINT_STARTED:
        wait = f"watching for up to {data.get('hold_s', 0):g}s" + (
            " then waiting for approval" if data.get("approve") else ""
        )
        return f"{when}  checkpoint of stage {data['stage'] + 1} {data.get('name')!r}: {wait}"
    if event.kind == EventKind.CHECKPOINT_PASSED:
        verdicts = ", ".join(f"{k}: {v}" for k, v in (data.get("verdicts") or {}).items())
        return f"{when}  stage {data['stage'] + 1} passed" + (f" ({verdicts})" if verdicts else "")
    if event.kind == EventKind.TRIGGER_EVALUATED:
        return f"{when}  trigger {data['trigger']!r} → {data['verdict']}: {data['summary']}"
    if event.kind == EventKind.TRIGGER_FIRED:
        return _fired(event)
    if event.kind == EventKind.ALERT_IGNORED:
        return _ignored(event)
    if event.kind == EventKind.ALERT_REJECTED:
        left_out = f" ({data['left_out']} more left out)" if data.get("left_out") else ""
        return f"{when}  rejected a webhook request: {data.get('reason')}{left_out}"
    if event.kind == EventKind.STEP_FINISHED:
        return f"{when}  {data.get('outcome')}: {step} — {data.get('summary', '')}"
    if event.kind == EventKind.STEP_SKIPPED:
        return f"{when}  skipped: {step} — {data.get('reason', '')}"
    if event.kind == EventKind.CHECK_FINISHED:
        ok = "passed" if data.get("passed") else "FAILED"
        return f"{when}  verify {ok}: {data.get('reason', '')}"
    if event.kind in _NOTED:
        detail = ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, dict))
        return f"{when}  {describe(event.kind)}: {detail}"
    return None


def explain(report: RunReport, events: list[Event]) -> list[str]:
    names = [s.name for s in report.steps]
    result = f", result {report.result}" if report.result else ""
    lines = [
        f"run {report.run_id} of plan {report.plan} (service {report.service}): "
        f"{report.status}{result}"
    ]
    if report.trigger:
        lines.append(
            f"why it backed out: {report.trigger.get('trigger')!r} — "
            f"{report.trigger.get('summary')}"
        )
    elif report.result == "promoted":
        lines.append("why it was promoted: every checkpoint passed with no trigger firing")
    lines.append("")
    lines += [text for event in events if (text := _line(event, names))]
    if report.message:
        lines += ["", f"outcome: {report.message}"]
    return lines
