"""Render a plan as a Markdown runbook: the document a change record or an auditor wants."""

from __future__ import annotations

from typing import Any

from backout.kernel.durations import format_duration
from backout.spec.loader import LoadedPlan


def _describe(loaded: LoadedPlan, section: str, kind: str, options: Any) -> str:
    item = loaded.kinds.of(section).get(kind)
    return str(item.describe(item.Options.model_validate(options)))


def _step_line(loaded: LoadedPlan, number: int, step: Any) -> str:
    facts = [f"timeout {format_duration(step.timeout)}"]
    if step.retries:
        facts.append(f"{step.retries} retr{'y' if step.retries == 1 else 'ies'}")
    facts.append("idempotent" if step.idempotent else "not idempotent")
    facts.append("on failure: continue" if step.on_failure == "continue" else "on failure: stop")
    action = _describe(loaded, "steps", step.kind, step.options).replace("`", "'")
    return f"{number}. **{step.name}** — `{action}` ({', '.join(facts)})"


def render_runbook(loaded: LoadedPlan) -> str:
    plan = loaded.plan
    rto = format_duration(plan.rto) if plan.rto is not None else "not set"
    lines = [
        f"# Backout runbook: {plan.plan}",
        "",
        "| | |",
        "| --- | --- |",
        f"| Service | `{plan.service_name}` |",
        f"| Owner | {plan.owner or 'not set'} |",
        f"| Risk | {plan.risk} |",
        f"| Recovery time objective | {rto} |",
        f"| Plan file | `{loaded.path.name}` (version `{loaded.version}`) |",
        "",
        "## Objective",
        "",
        f"Return `{plan.service_name}` to its last known good state"
        + (f" within {rto}" if plan.rto is not None else "")
        + ", and prove it with the checks below.",
        "",
        "## Roles",
        "",
        f"- **Lead:** {plan.roles.lead or 'not named'}",
        f"- **Approvers:** {', '.join(plan.roles.approvers) or 'none named'}",
        "",
    ]
    if plan.baseline:
        lines += [
            "## Baseline (recorded by `backout snapshot` before the deploy)",
            "",
            "| Value | How it is read |",
            "| --- | --- |",
        ]
        lines += [
            f"| `{name}` | {_describe(loaded, 'baseline', src.kind, src.options)} |"
            for name, src in plan.baseline.items()
        ]
        lines.append("")
    lines += _deploy_lines(loaded) + _trigger_lines(loaded)
    lines += [
        "## Steps" if not plan.deploy else "## Backout steps (after the stages are undone)",
        "",
    ]
    lines += [_step_line(loaded, i + 1, step) for i, step in enumerate(plan.steps)]
    lines += ["", '## What "restored" means', ""]
    if plan.verify:
        for check in plan.verify:
            window = f" (retried for up to {format_duration(check.within)})" if check.within else ""
            text = _describe(loaded, "verify", check.kind, check.options).replace("`", "'")
            lines.append(f"- [ ] **{check.name}** — {text}{window}")
    else:
        lines.append("- No verification checks: nothing proves the backout worked.")
    lines += [
        "",
        "## If the backout is interrupted",
        "",
        "Run `backout resume RUN_ID`. Finished steps are not run again; an interrupted "
        "idempotent step is re-run; an interrupted non-idempotent step stops the run in "
        "`needs_attention` until the lead checks the system and decides "
        "(`--mark-done N`, `--retry N` or `--skip N`).",
        "",
    ]
    return "\n".join(lines)


def _deploy_lines(loaded: LoadedPlan) -> list[str]:
    deploy = loaded.plan.deploy
    if deploy is None:
        return []
    lines = [
        f"## Deploy ({deploy.strategy}), stage by stage",
        "",
        "If a trigger fires at a checkpoint, the stages done so far are undone, newest "
        'first, then the backout steps below run and what "restored" means is '
        "checked.",
        "",
    ]
    for number, stage in enumerate(deploy.stages, 1):
        gate = f"hold {format_duration(stage.hold)}" + (
            ", then wait for `backout approve`" if stage.approve else ""
        )
        lines.append(f"{number}. **{stage.name}** — checkpoint: {gate}")
        for step in stage.steps:
            action = _describe(loaded, "steps", step.kind, step.options).replace("`", "'")
            undo = (
                f"; undo: `{_describe(loaded, 'steps', *next(iter(step.undo.items())))}`"
                if step.undo
                else ""
            )
            lines.append(f"   - {step.name} — `{action}`{undo}")
    return [*lines, ""]


def _trigger_lines(loaded: LoadedPlan) -> list[str]:
    triggers = loaded.plan.triggers
    if not triggers:
        return []
    lines = ["## When to back out (triggers)", ""]
    for trigger in triggers:
        on = f" on `{trigger.signal}`" if trigger.signal else ""
        options = ", ".join(f"{k}: {v}" for k, v in (trigger.options or {}).items())
        lines.append(
            f"- **{trigger.name}** — {trigger.kind}{on} ({options}); no data: {trigger.on_no_data}"
        )
    return [*lines, ""]
