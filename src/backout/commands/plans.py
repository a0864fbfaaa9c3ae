"""Plan verbs: validate, schema, init, show, and the dry run that renders every step."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backout.changes.policy import looks_like_policy
from backout.commands.policy import validate_policy
from backout.errors import Issue, NoStoreError, PlanError, TemplateError, UsageError
from backout.plans import KINDS, load_plan, plan_schema
from backout.spec.lint import lint, needs_release
from backout.spec.loader import LoadedPlan
from backout.spec.runbook import render_runbook
from backout.spec.templating import references, walk_strings

if TYPE_CHECKING:
    from backout.commands.caller import Caller
    from backout.engine.environment import RunEnvironment
    from backout.reports import DryRunReport
    from backout.store.models import SnapshotRow

# The dry run's engine, store and report imports are made where it runs: `backout validate`
# (this module's other verbs) starts without them (tests/unit/test_startup.py).


def validate(paths: Sequence[str | Path], strict: bool = False) -> dict[str, list[Issue]]:
    """Issues per file: load errors, then lint warnings (errors too when ``strict``). A
    policy file among them (:func:`~backout.changes.policy.looks_like_policy`) is checked
    as a policy: ``backout validate --strict *.yaml`` passes a folder of plans and its
    policy."""
    results: dict[str, list[Issue]] = {}
    for path in paths:
        if looks_like_policy(path):
            results.update(validate_policy([path]))
            continue
        try:
            loaded = load_plan(path)
        except PlanError as exc:
            results[str(path)] = exc.issues
            continue
        issues = lint(loaded)
        if strict:
            issues = [
                Issue(i.file, i.line, i.col, i.field, i.message, i.hint, "error") for i in issues
            ]
        results[str(path)] = issues
    return results


def schema() -> dict[str, Any]:
    return plan_schema()


def init(path: str | Path, force: bool = False) -> Path:
    """Write the starter plan at ``path``, creating its folder (like ``git init``)."""
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="choose another name or pass --force")
    if target.is_dir():
        raise UsageError(f"{target} is a folder", hint=f"name the file: {target / 'backout.yaml'}")
    starter = (files("backout.spec") / "starter.yaml").read_text(encoding="utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(starter, encoding="utf-8")
    except OSError as exc:
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        problem = f"{blocker} is a file, not a folder" if blocker else exc.strerror
        raise UsageError(
            f"cannot write {target}: {problem}", hint="choose another path for the plan"
        ) from exc
    return target


def show(path: str | Path) -> str:
    return render_runbook(load_plan(path))


def dry_run(caller: Caller, path: str | Path, environment: str | None = None) -> DryRunReport:
    """Render every step with the latest baseline; execute nothing, write nothing (give it
    a caller whose store is not created: a missing store is a problem listed, not made)."""
    from backout.engine import baseline
    from backout.engine.create import baseline_keys_used
    from backout.engine.environment import RunEnvironment
    from backout.reports import DryRunReport, DryRunStep
    from backout.spec.environments import environment_values, select_environment
    from backout.spec.secrets import resolve_secrets

    loaded = load_plan(path)
    plan = loaded.plan
    name = select_environment(plan, environment)
    problems = [str(issue) for issue in needs_release(loaded)]
    snap = _latest_snapshot(caller, loaded, name, problems)
    values = baseline.template_values(dict(snap.values)) if snap else {}
    unknown = baseline_keys_used(loaded) - set(values)  # said once above, not per step
    try:
        secrets = resolve_secrets(plan, loaded.base_dir)
    except UsageError as exc:
        problems.append(exc.message)
        secrets = {}
    run_values = {
        "id": "DRY-RUN",
        "plan": plan.plan,
        "service": plan.service_name,
        "actor": caller.actor,
        "release": "",  # as `backout run` sees it: only `backout deploy --release` sets it
        "environment": name or "",
    }
    env = RunEnvironment(
        loaded.base_dir, values, secrets, run_values, environment=environment_values(plan, name)
    )
    redactor = env.redactor
    steps = [
        DryRunStep(
            i + 1,
            s.name,
            s.kind,
            redactor.value(_render(s, env, problems, unknown)),
            s.timeout,
            s.retries,
            s.idempotent,
            s.on_failure,
        )
        for i, s in enumerate(plan.steps)
    ]
    checks = [
        {
            "number": i + 1,
            "name": c.name,
            "check": c.kind,
            "within_s": c.within,
            "rendered": redactor.value(_render(c, env, problems, unknown)),
        }
        for i, c in enumerate(plan.verify)
    ]
    return DryRunReport(
        plan.plan, plan.service_name, snap.id if snap else None, values, steps, checks, problems
    )


def _latest_snapshot(
    caller: Caller, loaded: LoadedPlan, environment: str | None, problems: list[str]
) -> SnapshotRow | None:
    """The service's latest snapshot; when the plan's steps or checks use a baseline value
    it lacks, one problem saying how to take one (as the real run would refuse)."""
    from backout.engine.create import baseline_keys_used
    from backout.store import repo

    service = loaded.plan.service_key(environment)
    where = ""
    try:
        with caller.store.session() as session:
            snap = repo.latest_snapshot(session, service)
    except NoStoreError as exc:
        snap, where = None, f" ({exc.message} yet)"
    needed = baseline_keys_used(loaded)
    take = f"run `backout snapshot {loaded.shown}{f' --env {environment}' if environment else ''}`"
    if needed and snap is None:
        problems.append(f"no snapshot for service {service}: {take}{where}")
    elif snap is not None and needed - set(snap.values):
        lacks = ", ".join(f"baseline.{key}" for key in sorted(needed - set(snap.values)))
        problems.append(f"snapshot #{snap.id} of service {service} has no {lacks}: {take}")
    return snap


def _render(item: Any, env: RunEnvironment, problems: list[str], unknown: set[str]) -> Any:
    """The item's options rendered; as written when they use a baseline value there is no
    snapshot of (that problem is listed once, not as a template error per step)."""
    if any(references(text)[1] & unknown for _, text in walk_strings(item.options)):
        return item.options
    section = "steps" if hasattr(item, "retries") else "verify"
    kind = KINDS.of(section).get(item.kind)
    try:
        return env.render(item.options, getattr(kind, "templated", True))
    except TemplateError as exc:  # the only error rendering raises; it would fail this step
        # the message may quote a value, and a value may be a secret
        problems.append(env.redactor(f"{item.name}: {exc.message}"))
        return item.options
