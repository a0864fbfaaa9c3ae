"""Lint rules for the ``rehearsal:`` section: a drill that could not do what it says."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import ValidationError

from backout.errors import Issue
from backout.spec.loader import LoadedPlan
from backout.spec.models import Plan


def rehearsal_rules(loaded: LoadedPlan) -> Iterator[Issue]:
    rehearsal = loaded.plan.rehearsal
    if rehearsal is None:
        return
    yield from _fault_targets(loaded)
    for index, step in enumerate(rehearsal.break_):
        action = loaded.kinds.actions.get(step.kind)
        if step.undo is None and not action.reversible and action.changes_state:
            yield loaded.issue(
                ("rehearsal", "break", index),
                f"break step {step.name!r} has no `undo:` and {step.kind} has no reverse: "
                "a drill whose backout fails could leave the service broken",
                "add `undo:` restoring what it breaks, e.g. {symlink: {link: current, "
                "target: releases/good}}",
                "warning",
            )
    if not loaded.plan.triggers:
        yield loaded.issue(
            ("rehearsal",),
            "the plan has no `triggers:`: a drill can only be detected by hand",
            "add triggers (docs/triggers.md), or run `backout rehearse --trigger manual`",
            "warning",
        )


def missing_targets(plan: Plan, targets: dict[str, str]) -> list[tuple[str, str, str]]:
    """What a fault names that the plan lacks: (what, name, the hint listing what exists).
    A fault naming a step, check or signal the plan lacks would silently do nothing."""
    names = {
        "step": {s.name for s in plan.steps},
        "check": {c.name for c in plan.verify},
        "signal": set(plan.telemetry),
    }
    return [
        (what, name, f"{what}s: {', '.join(sorted(names.get(what, set()))) or 'none'}")
        for what, name in targets.items()
        if name not in names.get(what, set())
    ]


def _fault_targets(loaded: LoadedPlan) -> Iterator[Issue]:
    plan = loaded.plan
    faults = plan.rehearsal.faults if plan.rehearsal else []
    for index, spec in enumerate(faults):
        kind = loaded.kinds.faults.get(spec.kind)
        try:
            options = kind.Options.model_validate(spec.options)
        except ValidationError:
            continue  # the loader already reported it
        for what, name, hint in missing_targets(plan, kind.targets(options)):
            yield loaded.issue(
                ("rehearsal", "faults", index, spec.kind, what),
                f"fault {spec.kind!r} names no {what} of this plan: {name!r}",
                hint,
            )
