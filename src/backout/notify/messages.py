"""The words of a notification: a built-in title and text per notify event, carrying the
run id, service, environment, reason, evidence and the ``backout explain`` command; a
plan may replace the text of any event with its own template (sandboxed Jinja, rendered
with ``run``, ``event``, ``notice`` and ``environment``). Everything is redacted with the
run's secrets before it is queued."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from backout.channels.notice import Notice, Severity
from backout.errors import TemplateError
from backout.kernel.durations import format_duration
from backout.kernel.events import Event
from backout.redact import Redactor
from backout.spec.models import DisasterRecovery, Notify
from backout.spec.templating import render_text

RISK_SEVERITY: Mapping[str, Severity] = {
    "low": "warning",
    "medium": "warning",
    "high": "error",
    "critical": "critical",
}
FIXED_SEVERITY: Mapping[str, Severity] = {
    "run.started": "info",
    "approval.waiting": "warning",
    "step.failed": "error",
    "run.needs_attention": "error",
    "run.stopped": "warning",
    "run.abandoned": "warning",
    "run.backed_out": "info",
    "run.promoted": "info",
    "run.healthy": "info",
    "run.failed": "critical",
    "rehearsal.passed": "info",
    "rehearsal.failed": "warning",
}
MAX_EVIDENCE_FIELDS = 6


@dataclass(frozen=True)
class RunFacts:
    """What every message of one run says about it."""

    run_id: str
    service: str
    plan: str
    environment: str = ""
    risk: str = "medium"
    mode: str = "backout"
    actor: str = ""
    release: str = ""
    step_names: list[str] = field(default_factory=list)
    checks: int = 0  # verify checks: "backed out and verified" only when there are some
    links: dict[str, str] = field(default_factory=dict)

    def notice(
        self, event: str, title: str, text: str, severity: Severity, at: float, **extra: Any
    ) -> Notice:
        """A notice about this run; ``extra`` sets (or replaces) the other fields."""
        values: dict[str, Any] = {
            "event": event,
            "title": title,
            "text": text,
            "severity": severity,
            "run_id": self.run_id,
            "service": self.service,
            "environment": self.environment,
            "plan": self.plan,
            "risk": self.risk,
            "mode": self.mode,
            "explain": f"backout explain {self.run_id}",
            "at": at,
            "fields": [("Run", self.run_id)],
            "links": dict(self.links),
        }
        return Notice(**(values | extra))

    def scope(self) -> dict[str, str]:
        return {
            "id": self.run_id,
            "service": self.service,
            "plan": self.plan,
            "environment": self.environment,
            "risk": self.risk,
            "mode": self.mode,
            "actor": self.actor,
            "release": self.release,
        }


def compose(
    name: str,
    event: Event,
    facts: RunFacts,
    status: str,
    redactor: Redactor,
    template: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> Notice:
    """The notice for notify event ``name`` made from journal ``event``."""
    title, text, fields, reason = _words(name, event, facts)
    severity = RISK_SEVERITY.get(facts.risk, "warning") if name == "trigger.fired" else None
    notice = facts.notice(
        name,
        title,
        text,
        severity or FIXED_SEVERITY.get(name, "warning"),
        event.at,
        status=status,
        reason=reason,
        fields=[("Run", facts.run_id), *fields],
    )
    if template:
        notice = replace(notice, text=_custom(template, notice, event, facts, environment))
    return _redacted(notice, redactor)


def handoff_notice(
    dr: DisasterRecovery,
    notify: Notify,
    facts: RunFacts,
    event: Event,
    status: str,
    redactor: Redactor,
) -> Notice:
    """The hand-off to disaster recovery, when the backout itself failed."""
    who = facts.service + (f"@{facts.environment}" if facts.environment else "")
    lines = [
        f"The backout failed: {event.data.get('message', '')}",
        f"Disaster recovery is now with {dr.owner}.",
    ]
    if dr.runbook:
        lines.append(f"Runbook: {dr.runbook}")
    if dr.plan:
        how = "starting it now if its gate passes" if dr.auto else "start it with `backout run`"
        lines.append(f"Recovery plan: {dr.plan} ({how}).")
    fields = [("Run", facts.run_id), ("DR owner", dr.owner)]
    links = dict(facts.links) | ({"DR runbook": dr.runbook} if dr.runbook else {})
    notice = facts.notice(
        "dr.handoff",
        f"{who}: BACKOUT FAILED, handed over to disaster recovery ({dr.owner})",
        "\n".join(lines),
        "critical",
        event.at,
        status=status,
        reason=str(event.data.get("message", "")),
        fields=fields,
        links=links,
    )
    return _redacted(notice, redactor)


def _custom(
    template: str,
    notice: Notice,
    event: Event,
    facts: RunFacts,
    environment: Mapping[str, str] | None,
) -> str:
    scope = {
        "run": facts.scope(),
        "event": {"kind": str(event.kind), **event.data},
        "notice": {k: v for k, v in notice.to_json().items() if k != "fields"},
        "environment": dict(environment or {}),
    }
    try:
        return render_text(template, scope)
    except TemplateError as exc:  # a message never fails the run: say what went wrong
        return f"{notice.text}\n(the plan's message template failed: {exc.message})"


def _redacted(notice: Notice, redactor: Redactor) -> Notice:
    return replace(
        notice,
        title=redactor(notice.title),
        text=redactor(notice.text),
        reason=redactor(notice.reason),
        fields=[(label, redactor(value)) for label, value in notice.fields],
    )


def _step(event: Event, facts: RunFacts) -> str:
    index = event.step if event.step is not None else -1
    name = facts.step_names[index] if 0 <= index < len(facts.step_names) else ""
    return f"step {index + 1} {name!r}" if name else f"step {index + 1}"


def _evidence(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    evidence = data.get("evidence")
    if not isinstance(evidence, dict):
        return []
    return [(str(k), _short(v)) for k, v in list(evidence.items())[:MAX_EVIDENCE_FIELDS]]


def _short(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, dict | list):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"


def _words(name: str, event: Event, facts: RunFacts) -> tuple[str, str, list[tuple[str, str]], str]:
    """(title, text, fields, reason) of the built-in message."""
    who = facts.service + (f"@{facts.environment}" if facts.environment else "")
    data = event.data
    message = str(data.get("message", ""))
    resume = f"Continue with `backout resume {facts.run_id}`."
    if name == "run.started":
        what = {"deploy": "deploy", "watch": "watch"}.get(facts.mode, "backout")
        release = f" of release {facts.release}" if facts.release else ""
        by = f" by {facts.actor}" if facts.actor else ""
        return f"{who}: {what}{release} started", f"Plan {facts.plan}{by}.", [], ""
    if name == "trigger.fired":
        reason = str(data.get("summary", ""))
        trigger = str(data.get("trigger", ""))
        text = f"Trigger {trigger!r} fired: {reason}. Backing out now."
        return f"{who}: trigger fired, backing out", text, _evidence(data), reason
    if name == "approval.waiting":
        stage = str(data.get("name", ""))
        text = f"Stage {stage!r} waits for approval: `backout approve {facts.run_id}`."
        return f"{who}: stage {stage!r} waits for approval", text, [], ""
    if name == "step.failed":
        step = _step(event, facts)
        reason = str(data.get("summary") or data.get("error") or "")
        return f"{who}: {step} failed", reason or "The step failed.", [], reason
    if name == "run.needs_attention":
        return f"{who}: the backout needs attention", message, [], message
    if name == "run.abandoned":
        by, why = str(data.get("by", "someone")), str(data.get("reason", ""))
        text = f"{by} gave the run up: {why}. It will not be resumed; the service is free."
        return f"{who}: run abandoned by {by}", text, [("Reason", why)], why
    if name == "run.stopped":
        signal = str(data.get("signal", "a signal"))
        return f"{who}: run stopped by {signal}", f"The run was stopped. {resume}", [], ""
    elapsed = data.get("elapsed_s")
    took = format_duration(float(elapsed)) if isinstance(elapsed, int | float) else ""
    fields: list[tuple[str, str]] = [("Took", took)] if took else []
    if data.get("rto_met") is not None:
        fields.append(("RTO met", "yes" if data["rto_met"] else "no"))
    titles = {
        "run.backed_out": f"{who}: backed out"
        + (" and verified" if facts.checks else "")
        + (f" in {took}" if took else ""),
        "run.promoted": f"{who}: release promoted",
        "run.healthy": f"{who}: release healthy, watch ended",
        "run.failed": f"{who}: BACKOUT FAILED",
        "rehearsal.passed": f"{who}: rehearsal passed" + (f" in {took}" if took else ""),
        "rehearsal.failed": f"{who}: rehearsal failed",
    }
    text = message
    if name == "run.failed":
        text = f"{message}\nThe way back did not work: hand over to disaster recovery."
    return titles.get(name, f"{who}: {name}"), text, fields, message if name == "run.failed" else ""
