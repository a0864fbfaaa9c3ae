"""Lint rules: what a valid plan is still missing. Each rule is a small function that yields
issues; ``--strict`` turns warnings into errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from backout.errors import Issue
from backout.kernel.durations import parse_duration
from backout.spec.fields import MAX_RETRY_DELAY
from backout.spec.lint_notify import notify_rules
from backout.spec.lint_rehearsal import rehearsal_rules
from backout.spec.loader import LoadedPlan
from backout.spec.models import Plan, Step
from backout.spec.templating import (
    CHANGE_KEYS,
    RUN_KEYS,
    SCOPE_NAMES,
    Usage,
    is_template,
    parse_error,
    usage,
    walk_strings,
)
from backout.spec.yamlfile import unknown_key_hint

Rule = Callable[[LoadedPlan], Iterator[Issue]]
Where = tuple[str | int, ...]
HIGH_RISK = ("high", "critical")


def _high_risk_needs(loaded: LoadedPlan) -> Iterator[Issue]:
    plan = loaded.plan
    if plan.risk not in HIGH_RISK:
        return
    hint_risk = f"a {plan.risk}-risk plan"
    if not plan.verify:
        yield loaded.issue(
            ("verify",) if "verify" in loaded.raw else ("risk",),
            f"{hint_risk} has no verify checks",
            "add `verify:` saying what 'restored' means",
            "warning",
        )
    if plan.rto is None:
        yield loaded.issue(
            ("risk",),
            f"{hint_risk} has no rto",
            "add `rto: 5m` (time budget for the whole backout)",
            "warning",
        )
    if not plan.roles.lead:
        yield loaded.issue(
            ("roles",) if "roles" in loaded.raw else ("risk",),
            f"{hint_risk} names no roles.lead",
            "add `roles: {lead: you@example.com}`",
            "warning",
        )
    for index, step in enumerate(plan.steps):
        if "timeout" not in step.model_fields_set:
            yield loaded.issue(
                ("steps", index),
                f"step {step.name!r} has no explicit timeout",
                "add `timeout: 30s`; the default is 60s",
                "warning",
            )


def _retries_need_idempotence(loaded: LoadedPlan) -> Iterator[Issue]:
    for index, step in enumerate(loaded.plan.steps):
        if step.retries and not step.idempotent:
            yield loaded.issue(
                ("steps", index, "retries"),
                f"step {step.name!r} retries but is not marked idempotent",
                "set `idempotent: true` if running it twice is safe, or drop `retries`",
                "warning",
            )


def _templates(loaded: LoadedPlan) -> Iterator[Issue]:
    for where, kind, options in _rendered(loaded.plan):
        for path, text in walk_strings(options):
            if kind == "shell" and "steps" in where:
                if is_template(text):
                    yield loaded.issue(
                        (*where, *path),
                        "templates are not rendered in shell: scripts",
                        "read values from $BACKOUT_BASELINE_<NAME> instead",
                        "warning",
                    )
                continue
            yield from _template_issues(loaded, (*where, *path), text)


def _rendered(plan: Plan) -> list[tuple[Where, str, Any]]:
    """(path of the kind key, kind, options) of everything whose options are rendered:
    steps, verify checks, deploy steps and their undo, telemetry signals."""
    items: list[tuple[Where, str, Any]] = [
        (("steps", i, s.kind), s.kind, s.options) for i, s in enumerate(plan.steps)
    ]
    items += [(("verify", i, c.kind), c.kind, c.options) for i, c in enumerate(plan.verify)]
    items += [(("telemetry", n, t.kind), t.kind, t.options) for n, t in plan.telemetry.items()]
    items += [(("baseline", n, b.kind), b.kind, b.options) for n, b in plan.baseline.items()]
    for s_index, stage in enumerate(plan.deploy.stages if plan.deploy else []):
        for index, step in enumerate(stage.steps):
            where: Where = ("deploy", "stages", s_index, "steps", index)
            items.append(((*where, step.kind), step.kind, step.options))
            items += [((*where, "undo", k), k, o) for k, o in (step.undo or {}).items()]
    for index, step in enumerate(plan.rehearsal.break_ if plan.rehearsal else []):
        where = ("rehearsal", "break", index)
        items.append(((*where, step.kind), step.kind, step.options))
        items += [((*where, "undo", k), k, o) for k, o in (step.undo or {}).items()]
    return items


def _template_issues(loaded: LoadedPlan, where: Where, text: str) -> Iterator[Issue]:
    error = parse_error(text) if is_template(text) else None
    if error:
        yield loaded.issue(where, f"template does not parse: {error}", "check the {{ }} braces")
        return
    used = usage(text)
    for name in sorted(used.names - SCOPE_NAMES):
        yield loaded.issue(
            where,
            f"template uses unknown name {name!r}",
            unknown_key_hint(name, sorted(SCOPE_NAMES), "names in scope"),
        )
    yield from _scope_key_issues(loaded, where, used)


# scope name -> (how a missing key is described, the hint's list label, the hint when empty)
NEVER_RESOLVES = {
    "run": ("which does not exist", "`run` has", ""),
    "change": (
        "but `change` has no values yet",
        "",
        "remove it: `change` is reserved for change records",
    ),
    "secrets": ("which `secrets:` does not declare", "declared", "declare it under secrets:"),
    "environment": (
        "which not every one of `environments:` defines",
        "every environment defines",
        "declare `environments:` with this key in each (and run with --env)",
    ),
}


def _scope_key_issues(loaded: LoadedPlan, where: Where, used: Usage) -> Iterator[Issue]:
    """Keys of ``run``, ``change`` and ``secrets`` are known before a run: a key outside
    them can never render. Baseline keys depend on the snapshot, so they only warn."""
    known = {
        "run": RUN_KEYS,
        "change": CHANGE_KEYS,
        "secrets": tuple(sorted(loaded.plan.secrets)),
        "environment": _environment_keys(loaded.plan),
    }
    for name, keys in known.items():
        missing, listed, empty = NEVER_RESOLVES[name]
        for key in sorted(used.keys_of(name) - set(keys)):
            hint = unknown_key_hint(key, list(keys), listed) if keys else empty
            yield loaded.issue(where, f"template uses {name}.{key}, {missing}", hint)
    for key in sorted(used.keys_of("baseline") - set(loaded.plan.baseline)):
        if loaded.plan.baseline:
            declared = ", ".join(sorted(loaded.plan.baseline))
            message = f"template uses baseline.{key}, which `baseline:` does not define"
            hint = f"declare it under baseline: (known: {declared})"
        else:
            message = f"template uses baseline.{key}, but the plan has no `baseline:` values"
            hint = (
                f"add them, e.g. `baseline: {{{key}: {{readlink: releases/current}}}}`, "
                "and record them with `backout snapshot PLAN`"
            )
        yield loaded.issue(where, message, hint, "warning")


def _environment_keys(plan: Plan) -> tuple[str, ...]:
    """The keys every environment defines (and ``name``): a template may rely on those."""
    if not plan.environments:
        return ()
    common = set.intersection(*(set(values) for values in plan.environments.values()))
    return tuple(sorted(common | {"name"}))


def needs_release(loaded: LoadedPlan) -> list[Issue]:
    """The backout ``steps:`` and ``verify:`` that use ``run.release``: only
    ``backout deploy --release`` sets it, so under ``backout run`` they would see ''."""
    named = [
        ("steps", i, "step", s.name, s.kind, s.options) for i, s in enumerate(loaded.plan.steps)
    ]
    named += [
        ("verify", i, "check", c.name, c.kind, c.options) for i, c in enumerate(loaded.plan.verify)
    ]
    return [
        loaded.issue(
            (section, index, kind, *path),
            f"{label} {name!r} uses run.release, which only `backout deploy --release` sets",
            "`backout run` has no release: use a baseline value such as "
            "{{ baseline.release }}, recorded by `backout snapshot`",
        )
        for section, index, label, name, kind, options in named
        if kind != "shell"  # never rendered; lint warns about {{ }} there
        for path, text in walk_strings(options)
        if "release" in usage(text).keys_of("run")
    ]


def _step_worst(step: Step) -> float:
    """Every attempt timing out, plus the backoff between attempts (doubling, capped)."""
    delays = sum(min(step.retry_delay * 2.0**k, MAX_RETRY_DELAY) for k in range(step.retries))
    return step.timeout * (1 + step.retries) + delays


def _rto_budget(loaded: LoadedPlan) -> Iterator[Issue]:
    plan = loaded.plan
    if plan.rto is None:
        return
    # a check's last attempt may start just before `within` ends and then use its timeout;
    # a deploy's backout first undoes the stages, each undo under its forward step's timeout
    stage_steps = [s for stage in plan.deploy.stages for s in stage.steps] if plan.deploy else []
    undos = [
        s for s in stage_steps if s.undo is not None or loaded.kinds.actions.get(s.kind).reversible
    ]
    worst = sum(_step_worst(s) for s in [*undos, *plan.steps]) + sum(
        c.within + c.timeout for c in plan.verify
    )
    if worst > plan.rto:
        yield loaded.issue(
            ("rto",),
            f"worst case ({worst:g}s of timeouts and retries) exceeds rto ({plan.rto:g}s)",
            "tighten step timeouts or raise rto",
            "warning",
        )


def _wait_fits_timeout(loaded: LoadedPlan) -> Iterator[Issue]:
    for index, step in enumerate(loaded.plan.steps):
        delay = _wait_delay(step.options) if step.kind == "wait" else None
        if delay is not None and delay >= step.timeout:
            yield loaded.issue(
                ("steps", index, "wait"),
                f"waits {delay:g}s but the step's timeout is {step.timeout:g}s",
                f"set `timeout:` above {delay:g}s",
                "error",
            )


def _wait_delay(options: object) -> float | None:
    raw = options.get("delay") if isinstance(options, dict) else options
    if raw is None or isinstance(raw, dict | list):
        return None
    try:
        return parse_duration(raw)
    except ValueError:
        return None


def _trigger_signals(loaded: LoadedPlan) -> Iterator[Issue]:
    known = ", ".join(sorted(loaded.plan.telemetry)) or "none: add a `telemetry:` block"
    for index, trigger in enumerate(loaded.plan.triggers):
        names: list[tuple[tuple[str | int, ...], str | None]] = []
        if loaded.kinds.triggers.get(trigger.kind).needs_signal:
            names.append((("triggers", index, "signal"), trigger.signal))
        if trigger.kind == "judge":
            where: tuple[str | int, ...] = ("triggers", index, "judge")
            names += [
                ((*where, "baseline"), trigger.options.get("baseline")),
                ((*where, "canary"), trigger.options.get("canary")),
            ]
        for where, name in names:
            if name is None:
                yield loaded.issue(
                    ("triggers", index),
                    f"trigger {trigger.name!r} needs `signal:`",
                    f"signals: {known}",
                )
            elif name not in loaded.plan.telemetry:
                yield loaded.issue(
                    where, f"no telemetry signal named {name!r}", f"signals: {known}"
                )


def _no_data_explicit(loaded: LoadedPlan) -> Iterator[Issue]:
    """What to do without data is a decision, not a default to stumble on."""
    for index, trigger in enumerate(loaded.plan.triggers):
        if trigger.signal and "on_no_data" not in trigger.model_fields_set:
            yield loaded.issue(
                ("triggers", index),
                f"trigger {trigger.name!r} does not say "
                "what to do without data: it pauses the checkpoint",
                "set `on_no_data: pause`, `backout` or `ignore`",
                "warning",
            )


def _stage_reverses(loaded: LoadedPlan) -> Iterator[Issue]:
    deploy = loaded.plan.deploy
    for s_index, stage in enumerate(deploy.stages if deploy else []):
        for index, step in enumerate(stage.steps):
            action = loaded.kinds.actions.get(step.kind)
            if step.undo is None and not action.reversible and action.changes_state:
                yield loaded.issue(
                    ("deploy", "stages", s_index, "steps", index),
                    f"{step.kind} step {step.name!r} has no reverse: backing out "
                    "this stage relies on the plan's `steps:`",
                    "add `undo:` with the action that reverses it",
                    "warning",
                )


RULES: list[Rule] = [
    _high_risk_needs,
    _retries_need_idempotence,
    _templates,
    _rto_budget,
    _wait_fits_timeout,
    _trigger_signals,
    _no_data_explicit,
    _stage_reverses,
    rehearsal_rules,
    notify_rules,
]


def lint(loaded: LoadedPlan) -> list[Issue]:
    issues = [issue for rule in RULES for issue in rule(loaded)]
    return sorted(issues, key=lambda i: (i.line, i.col))
