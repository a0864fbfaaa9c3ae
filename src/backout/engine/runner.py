"""Execute a run: steps in order, then verification, every move journaled before and after.

Resume semantics: finished steps are never run again; a step that started and never
finished is re-run only when it is ``idempotent``; otherwise the run stops in
``needs_attention`` until an operator decides (``--mark-done``, ``--skip``, ``--retry``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from backout.actions import ACTIONS
from backout.actions.base import Outcome
from backout.engine import failpoints
from backout.engine.environment import RunEnvironment, resolve_secrets
from backout.engine.hooks import hooks_for
from backout.engine.invoke import with_deadline
from backout.engine.journal import Journal, Observer
from backout.engine.lease import Heartbeat
from backout.engine.states import RUN_TERMINAL, RunStatus, StepStatus
from backout.engine.view import RunView, new_view
from backout.errors import StoreError, TemplateError, UsageError
from backout.probes import CHECKS, Verdict
from backout.spec.models import MAX_RETRY_DELAY, Check, Plan, Step
from backout.spec.templating import render_value
from backout.store import repo
from backout.store.db import Store
from backout.store.models import RunRow

Decision = Literal["retry", "done", "skip"]


@dataclass(frozen=True)
class Execution:
    """Everything needed to execute one run in this process."""

    store: Store
    row: RunRow
    plan: Plan
    owner: str
    actor: str
    lease_ttl: float
    decisions: dict[int, Decision] = field(default_factory=dict)
    observer: Observer | None = None


def plan_of(row: RunRow) -> tuple[Plan, Path]:
    return Plan.model_validate(row.plan_doc["plan"]), Path(row.plan_doc["base_dir"])


def empty_view(row: RunRow, plan: Plan) -> RunView:
    return new_view(row.id, [s.name for s in plan.steps], [c.name for c in plan.verify])


def environment(store: Store, row: RunRow, plan: Plan, base_dir: Path) -> RunEnvironment:
    baseline: dict[str, str] = {}
    if row.snapshot_id is not None:
        with store.session() as session:
            snapshot = repo.get_snapshot(session, row.snapshot_id)
            baseline = dict(snapshot.values) if snapshot else {}
    run = {"id": row.id, "plan": row.plan, "service": row.service, "actor": row.actor}
    return RunEnvironment(base_dir, baseline, resolve_secrets(plan, base_dir), run)


def execute(ex: Execution) -> RunView:
    """Drive the run to a terminal state or ``needs_attention``; return the final view."""
    plan, base_dir = plan_of(ex.row)
    env = environment(ex.store, ex.row, plan, base_dir)
    journal = Journal.open(
        ex.store,
        empty_view(ex.row, plan),
        env.redactor,
        ex.observer,
        hooks_for(ex.row.change_id, ex.actor),
    )
    if journal.view.status in RUN_TERMINAL:
        return journal.view
    with Heartbeat(ex.store, ex.row.service, ex.owner, ex.lease_ttl) as heartbeat:
        _start(journal, ex)
        _Steps(journal, ex, env, heartbeat).run()
    return journal.view


def check_decisions(view: RunView, decisions: dict[int, Decision]) -> None:
    """Operator decisions apply only to a step that started and never finished."""
    for index, decision in decisions.items():
        if not 0 <= index < len(view.steps):
            raise UsageError(
                f"step {index + 1} does not exist; the plan has {len(view.steps)} steps",
                run_id=view.run_id,
            )
        step = view.steps[index]
        if step.status is not StepStatus.RUNNING:
            flag = "--mark-done" if decision == "done" else f"--{decision}"
            raise UsageError(
                f"step {index + 1} {step.name!r} is {step.status}, not "
                f"interrupted; {flag} applies only to a step that started and "
                "never finished",
                run_id=view.run_id,
            )


def _start(journal: Journal, ex: Execution) -> None:
    view = journal.view
    if view.status is RunStatus.PENDING:
        journal.append("run_started", actor=ex.actor, owner=ex.owner)
    else:
        decisions = {str(i + 1): d for i, d in ex.decisions.items()}
        journal.append(
            "run_resumed",
            actor=ex.actor,
            owner=ex.owner,
            decisions=decisions,
            previous_status=view.status.value,
        )


class _Steps:
    def __init__(
        self, journal: Journal, ex: Execution, env: RunEnvironment, heartbeat: Heartbeat
    ) -> None:
        self.journal, self.ex, self.env, self.heartbeat = journal, ex, env, heartbeat

    def run(self) -> None:
        for index, step in enumerate(self.ex.plan.steps):
            if not self._step(index, step):
                return
        if self._verify():
            self._finish(
                RunStatus.SUCCEEDED,
                "backout finished and verified"
                if self.ex.plan.verify
                else "backout finished (no verify checks)",
            )

    # --- steps ---------------------------------------------------------------------------
    def _step(self, index: int, step: Step) -> bool:
        """Bring one step to a final state; False when the run must stop here."""
        state = self.journal.view.steps[index]
        if state.status is StepStatus.RUNNING and not self._interrupted(index, step):
            return False
        if state.status is StepStatus.PENDING or state.status is StepStatus.RUNNING:
            self._guard_lease()
            failpoints.hit("before_step", index + 1)
            self._attempts(index, step, first=state.attempts + 1)
        if self.journal.view.steps[index].status is StepStatus.FAILED and step.on_failure == "stop":
            summary = self.journal.view.steps[index].summary
            self._finish(RunStatus.FAILED, f"step {index + 1} {step.name!r} failed: {summary}")
            return False
        return True

    def _interrupted(self, index: int, step: Step) -> bool:
        """A step started before a crash and never finished: decide whether to run it again."""
        decision = self.ex.decisions.get(index)
        if decision is not None:
            self.journal.append(
                "operator_decision", step=index, decision=decision, actor=self.ex.actor
            )
        if decision == "done":
            self.journal.append(
                "step_finished",
                step=index,
                outcome="succeeded",
                summary=f"marked done by {self.ex.actor}",
                resolved=True,
            )
            return True
        if decision == "skip":
            self.journal.append("step_skipped", step=index, reason=f"skipped by {self.ex.actor}")
            return True
        if step.idempotent or decision == "retry":
            self.journal.append(
                "warning",
                step=index,
                message="step was interrupted; running it again"
                + (" (idempotent)" if step.idempotent else " (operator retry)"),
            )
            return True
        message = (
            f"step {index + 1} {step.name!r} was interrupted and is not idempotent: "
            "it may or may not have taken effect. Check the system, then run "
            f"`backout resume {self.ex.row.id} --mark-done {index + 1}` if it took "
            f"effect, `--retry {index + 1}` to run it again, or `--skip {index + 1}`"
        )
        self.journal.append("run_needs_attention", step=index, message=message)
        return False

    def _attempts(self, index: int, step: Step, first: int) -> None:
        last = first + step.retries  # a re-run after a crash gets a fresh retry budget
        for attempt in range(first, last + 1):
            started = time.monotonic()
            self.journal.append("step_started", step=index, attempt=attempt)
            failpoints.hit("step_started", index + 1)
            outcome = self._invoke(step)
            failpoints.hit("action_done", index + 1)
            data = {
                "summary": outcome.summary,
                "output": outcome.output,
                "duration_s": round(time.monotonic() - started, 3),
                **outcome.detail,
            }
            if outcome.ok or attempt == last:
                self.journal.append(
                    "step_finished",
                    step=index,
                    attempt=attempt,
                    outcome="succeeded" if outcome.ok else "failed",
                    **data,
                )
                failpoints.hit("step_finished", index + 1)
                return
            delay = min(step.retry_delay * 2 ** (attempt - first), MAX_RETRY_DELAY)
            self.journal.append("step_retrying", step=index, attempt=attempt, delay_s=delay, **data)
            time.sleep(delay)

    def _invoke(self, step: Step) -> Outcome:
        action = ACTIONS.get(step.kind)
        redactor = self.journal.redactor
        try:
            raw = render_value(step.options, self.env.scope()) if action.templated else step.options
            options = action.Options.model_validate(raw)
        except TemplateError as exc:
            return Outcome(False, redactor(exc.message))
        except ValidationError as exc:
            return Outcome(False, redactor(f"options are invalid after rendering: {exc}"))
        ctx = self.env.context(step.timeout, redactor)
        return with_deadline(
            lambda: action.execute(options, ctx),
            step.timeout,
            lambda message: Outcome(False, redactor(message)),
        )

    # --- verification --------------------------------------------------------------------
    def _verify(self) -> bool:
        checks = self.journal.view.checks
        if not checks:
            return True
        if all(check.started_at is None for check in checks):
            self.journal.append("verify_started")
            failpoints.hit("verify_started")
        for index, check in enumerate(self.ex.plan.verify):
            if checks[index].passed is None:
                self._check(index, check)
                failpoints.hit("check_finished", index + 1)
        failed = [c for c in self.journal.view.checks if not c.passed]
        if failed:
            reasons = "; ".join(f"{c.name!r}: {c.reason}" for c in failed)
            self._finish(RunStatus.FAILED, f"verification failed: {reasons}")
            return False
        return True

    def _check(self, index: int, check: Check) -> None:
        self.journal.append("check_started", step=index)
        deadline = time.monotonic() + check.within
        attempts = 0
        while True:
            attempts += 1
            verdict = self._probe(check)
            if verdict.passed or time.monotonic() + check.interval > deadline:
                break
            time.sleep(check.interval)
        self.journal.append(
            "check_finished",
            step=index,
            passed=verdict.passed,
            reason=verdict.reason,
            attempts=attempts,
            observed=_jsonable(verdict.observed),
        )

    def _probe(self, check: Check) -> Verdict:
        probe = CHECKS.get(check.kind)
        redactor = self.journal.redactor
        try:
            options = probe.Options.model_validate(render_value(check.options, self.env.scope()))
        except (TemplateError, ValidationError) as exc:
            return Verdict(False, redactor(str(exc)))
        ctx = self.env.context(check.timeout, redactor)
        return with_deadline(
            lambda: probe.check(options, ctx),
            check.timeout,
            lambda message: Verdict(False, redactor(message)),
        )

    # --- end -----------------------------------------------------------------------------
    def _finish(self, outcome: RunStatus, message: str) -> None:
        failpoints.hit("before_finish")
        view = self.journal.view
        elapsed = time.time() - (view.started_at or view.created_at or time.time())
        rto = self.ex.plan.rto
        self.journal.append(
            "run_finished",
            outcome=outcome.value,
            message=message,
            elapsed_s=round(elapsed, 3),
            rto_s=rto,
            rto_met=None if rto is None else elapsed <= rto,
        )

    def _guard_lease(self) -> None:
        if self.heartbeat.lost.is_set():
            raise StoreError(
                "this worker lost the service lease; another worker may have taken the run over",
                run_id=self.ex.row.id,
                hint=f"check `backout status {self.ex.row.id}`",
            )


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
