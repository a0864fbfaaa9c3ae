"""Bringing units to a final state and verifying: the machinery every kind of run shares.

Resume semantics: finished units are never run again; a unit that started and never
finished is re-run only when its step is ``idempotent``; otherwise the run stops in
``needs_attention`` until an operator decides (``--mark-done``, ``--skip``, ``--retry``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from backout.actions import ACTIONS
from backout.actions.base import Outcome
from backout.engine import failpoints
from backout.engine.environment import RunEnvironment
from backout.engine.injection import NO_FAULTS, Injector
from backout.engine.invoke import with_deadline
from backout.engine.journal import Journal
from backout.engine.layout import Unit
from backout.engine.lease import Heartbeat
from backout.errors import ActionError, StoreError, TemplateError
from backout.faults import FaultContext
from backout.kernel.events import EventKind
from backout.kernel.states import RunStatus, StepStatus
from backout.probes import CHECKS, Verdict
from backout.proc import SPAWN_HOOK, Spawned, kill_orphan, ready_zygote
from backout.spec.fields import MAX_RETRY_DELAY
from backout.spec.models import Plan, VerifyCheck
from backout.stop import STOP, Stopped

Decision = Literal["retry", "done", "skip"]
Result = Literal["ok", "failed", "attention"]


@dataclass
class _Start:
    """One attempt of a step, and whether its ``step_started`` is journalled yet. The
    action's thread (journalling a process) and the step's (journalling its end, or a
    timeout's) look and write under ``lock``: the start is written once."""

    step: int
    attempt: int
    written: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class StepRunner:
    journal: Journal
    plan: Plan
    env: RunEnvironment
    heartbeat: Heartbeat
    run_id: str
    actor: str
    decisions: dict[int, Decision] = field(default_factory=dict)
    faults: Injector = NO_FAULTS  # a rehearsal's, acting on the backout's steps and checks

    # --- units ---------------------------------------------------------------------------
    def bring(self, unit: Unit, *, followed: bool = False) -> Result:
        """Bring one unit to a final state: ``ok``, ``failed`` (and it must stop the run),
        or ``attention`` (the run is now waiting for an operator). ``followed``: the caller
        brings the next unit at once if this one is ``ok``, so a step that succeeds may
        have its end written with that unit's first event, in one transaction."""
        state = self.journal.view.steps[unit.index]
        if state.status not in (StepStatus.PENDING, StepStatus.RUNNING):
            self.journal.flush()  # finished before (a resume): nothing of it to write with
        if state.status is StepStatus.RUNNING and not self._interrupted(unit):
            return "attention"
        if state.status in (StepStatus.PENDING, StepStatus.RUNNING):
            STOP.check()  # a safe point: nothing of this unit runs yet
            self._guard_lease()
            failpoints.hit("before_step", unit.index + 1)
            self._attempts(unit, first=state.attempts + 1, followed=followed)
        final = self.journal.view.steps[unit.index].status
        return "failed" if final is StepStatus.FAILED and unit.step.on_failure == "stop" else "ok"

    def ready(self, units: list[Unit]) -> None:
        """Before waiting for a trigger: load each unit's kind now and, if one starts
        programs, the run's shim zygote, so the time from an alert to the first backout
        step's program is not spent importing or starting a Python."""
        kinds = {self._kind(unit) for unit in units if unit.role != "forward"}
        actions = [ACTIONS.get(kind) for kind in kinds if kind in ACTIONS]
        if any(not action.in_process for action in actions):
            ready_zygote()

    @staticmethod
    def _kind(unit: Unit) -> str:
        undo = getattr(unit.step, "undo", None) if unit.role == "reverse" else None
        return next(iter(undo)) if undo else unit.step.kind

    def skip(self, unit: Unit, reason: str) -> None:
        if self.journal.view.steps[unit.index].status is StepStatus.PENDING:
            self.journal.append(EventKind.STEP_SKIPPED, step=unit.index, reason=reason)

    def _interrupted(self, unit: Unit) -> bool:
        """A unit started before a crash and never finished: decide whether to run it again."""
        index, step = unit.index, unit.step
        decision = self.decisions.get(index)
        if decision is not None:
            self.journal.append(
                EventKind.OPERATOR_DECISION, step=index, decision=decision, actor=self.actor
            )
        if decision == "done":
            self.journal.append(
                EventKind.STEP_FINISHED,
                step=index,
                outcome="succeeded",
                summary=f"marked done by {self.actor}",
                resolved=True,
            )
            return True
        if decision == "skip":
            self.journal.append(
                EventKind.STEP_SKIPPED, step=index, reason=f"skipped by {self.actor}"
            )
            return True
        if step.idempotent or decision == "retry":
            how = " (idempotent)" if step.idempotent else " (operator retry)"
            self.journal.append(
                EventKind.WARNING,
                step=index,
                message="step was interrupted; running it again" + how,
            )
            return True
        message = (
            f"step {index + 1} {unit.name!r} was interrupted and is not idempotent: it may or "
            "may not have taken effect. Check the system, then run "
            f"`backout resume {self.run_id} --mark-done {index + 1}` if it took effect, "
            f"`--retry {index + 1}` to run it again, or `--skip {index + 1}`"
        )
        self.journal.append(EventKind.RUN_NEEDS_ATTENTION, step=index, message=message)
        return False

    def _attempts(self, unit: Unit, first: int, followed: bool = False) -> None:
        index, step = unit.index, unit.step
        call = self._prepare(unit)
        if isinstance(call, Outcome):  # nothing started: one event, so resume knows that
            self.journal.append(
                EventKind.STEP_FINISHED,
                step=index,
                outcome="failed",
                started=False,
                **_data(call, 0.0),
            )
            return
        last = first + step.retries  # a re-run after a crash gets a fresh retry budget
        deferred = self._defers_start(unit)
        for attempt in range(first, last + 1):
            started = time.monotonic()
            start = _Start(index, attempt)
            if not deferred:
                self._start(start)
            outcome = self._faulted(unit, attempt) or self._call(unit, attempt, call, start)
            failpoints.hit("action_done", index + 1)
            data = _data(outcome, time.monotonic() - started)
            if outcome.ok or attempt == last:
                held = followed and outcome.ok and not failpoints.armed("step_finished", index + 1)
                self._after(
                    start,
                    EventKind.STEP_FINISHED,
                    held,
                    outcome="succeeded" if outcome.ok else "failed",
                    **data,
                )
                failpoints.hit("step_finished", index + 1)
                return
            delay = min(step.retry_delay * 2 ** (attempt - first), MAX_RETRY_DELAY)
            self._after(
                start,
                EventKind.STEP_RETRYING,
                False,
                delay_s=delay,
                last_attempt=last,  # so the retry line can say "attempt 2 of 3"
                **data,
            )
            if STOP.wait(delay):
                raise Stopped(STOP.signum)

    def _defers_start(self, unit: Unit) -> bool:
        """Whether the step's start may be journalled with the first process it starts, in
        one transaction: its kind acts only through the programs it starts (each held until
        the journal has it), and no rehearsal fault acts on it."""
        if self.faults is not NO_FAULTS:
            return False
        kind = self._kind(unit)
        return kind in ACTIONS and not ACTIONS.get(kind).in_process

    def _start(
        self, start: _Start, *more: tuple[EventKind, int, int | None, dict[str, Any]]
    ) -> None:
        """Journal the attempt's start (with ``more`` events, in one transaction)."""
        self.journal.append_steps((EventKind.STEP_STARTED, start.step, start.attempt, {}), *more)
        start.written = True
        failpoints.hit("step_started", start.step + 1)

    def _after(self, start: _Start, kind: EventKind, held: bool, /, **data: Any) -> None:
        """Journal an event of the attempt (its process, its end), with the attempt's start
        if that is not journalled yet: a process's start, or an end that started none.
        ``held``: an end the next unit's first event writes (:meth:`Journal.hold`)."""
        event = (kind, start.step, start.attempt, data)
        with start.lock:
            if start.written and held:
                self.journal.hold(kind, start.step, start.attempt, **data)
            elif start.written:
                self.journal.append_steps(event)
            else:
                self._start(start, event)

    def _prepare(self, unit: Unit) -> Callable[[], Outcome | None] | Outcome:
        """Render the options and bind the action; an Outcome when that already failed
        (a template error fails the step before anything starts)."""
        step = unit.step
        undo = getattr(step, "undo", None) if unit.role == "reverse" else None
        kind, raw = next(iter(undo.items())) if undo else (step.kind, step.options)
        action = ACTIONS.get(kind)
        redactor = self.journal.redactor
        try:
            rendered = self.env.render(raw, action.templated)
            options = action.Options.model_validate(rendered)
        except TemplateError as exc:
            return Outcome(False, redactor(f"not started: {exc.message}"))
        except ValidationError as exc:
            return Outcome(
                False, redactor(f"not started: options are invalid after rendering: {exc}")
            )
        ctx = self.env.context(step.timeout, redactor)
        if unit.role == "reverse" and not undo:
            done = self.journal.view.steps[unit.forward or 0].detail
            return lambda: action.reverse(options, done, ctx)
        return lambda: action.execute(options, ctx)

    def _faulted(self, unit: Unit, attempt: int) -> Outcome | None:
        """A rehearsal fault's outcome for this attempt of a backout step (nothing runs)."""
        if unit.role != "backout":
            return None
        self.faults.kill_if(unit.step.name, unit.index, attempt)
        where = FaultContext(self.env.base_dir, self.env.store_url)
        self.faults.before(unit.step.name, unit.index, attempt, where)
        return self.faults.outcome(unit.step.name, unit.index, attempt)

    def _call(
        self, unit: Unit, attempt: int, call: Callable[[], Outcome | None], start: _Start
    ) -> Outcome:
        """Run the action with a hard deadline; each process group it starts is journalled
        before its program may run (so a taker-over can find it), the first with the
        attempt's start if that is not journalled yet."""
        redactor = self.journal.redactor
        groups = _Groups(lambda group: self._journal_group(start, group))
        token = SPAWN_HOOK.set(groups.spawned)
        hold = self.faults.delay(unit.step.name, unit.index) if unit.role == "backout" else 0.0
        if hold:
            call = _held(call, hold, unit.step.timeout)
        try:
            outcome = with_deadline(call, unit.step.timeout, lambda m: Outcome(False, redactor(m)))
        finally:
            SPAWN_HOOK.reset(token)
            groups.close()
        return outcome or Outcome(False, f"{unit.step.kind} has no reverse")

    def _journal_group(self, start: _Start, group: Spawned) -> None:
        self._after(start, EventKind.STEP_PROCESS, False, **group.to_json())

    # --- verification --------------------------------------------------------------------
    def verify(self, finish: bool = True) -> bool:
        """Run the checks not yet finished; False if any did not pass (and, with
        ``finish``, the run failed)."""
        checks = self.journal.view.checks
        if not checks:
            return True
        if all(check.started_at is None for check in checks):
            self.journal.append(EventKind.VERIFY_STARTED)
            failpoints.hit("verify_started")
        for index, check in enumerate(self.plan.verify):
            if checks[index].passed is None:
                STOP.check()
                self._check(index, check)
                failpoints.hit("check_finished", index + 1)
        failed = [c for c in self.journal.view.checks if not c.passed]
        if failed and finish:
            self.finish(RunStatus.FAILED, f"verification failed: {failed_checks(failed)}")
        return not failed

    def steady_state(self, phase: str) -> list[dict[str, str]]:
        """A rehearsal's look at the service: every verify check, each given its
        ``within``, no fault applied; journalled as one ``steady_state`` event. The
        failures, empty when the service is in its steady state."""
        failures: list[dict[str, str]] = []
        for check in self.plan.verify:
            STOP.check()
            verdict, _ = self._verdict(check)
            if not verdict.passed:
                failures.append({"check": check.name, "reason": verdict.reason})
        self.journal.append(
            EventKind.STEADY_STATE, phase=phase, passed=not failures, failures=failures
        )
        return failures

    def _check(self, index: int, check: VerifyCheck) -> None:
        self.journal.append(EventKind.CHECK_STARTED, step=index)
        faulted = self.faults.verdict(check.name, index)
        verdict, attempts = (faulted, 1) if faulted else self._verdict(check)
        self.journal.append(
            EventKind.CHECK_FINISHED,
            step=index,
            passed=verdict.passed,
            reason=verdict.reason,
            attempts=attempts,
            observed=_jsonable(verdict.observed),
        )

    def _verdict(self, check: VerifyCheck) -> tuple[Verdict, int]:
        """Probe until the check passes or its ``within`` runs out: (verdict, attempts)."""
        deadline = time.monotonic() + check.within
        attempts = 0
        while True:
            attempts += 1
            verdict = self._probe(check)
            if verdict.passed or time.monotonic() + check.interval > deadline:
                return verdict, attempts
            if STOP.wait(check.interval):
                raise Stopped(STOP.signum)

    def _probe(self, check: VerifyCheck) -> Verdict:
        probe = CHECKS.get(check.kind)
        redactor = self.journal.redactor
        try:
            options = probe.Options.model_validate(self.env.render(check.options))
        except (TemplateError, ValidationError) as exc:
            return Verdict(False, redactor(str(exc)))
        ctx = self.env.context(check.timeout, redactor)
        return with_deadline(
            lambda: probe.check(options, ctx),
            check.timeout,
            lambda message: Verdict(False, redactor(message)),
        )

    # --- end -----------------------------------------------------------------------------
    def finish(self, outcome: RunStatus, message: str, **extra: Any) -> None:
        """The run's last event. The rto is measured from when the backout began (for a
        deploy or watch: when the trigger fired), and only for runs that backed out."""
        failpoints.hit("before_finish")
        view = self.journal.view
        now = time.time()
        elapsed = now - (view.backout_started_at or view.started_at or view.created_at or now)
        rto = self.plan.rto
        measured = rto is not None and extra.get("result") not in ("promoted", "healthy")
        self.journal.append(
            EventKind.RUN_FINISHED,
            outcome=outcome.value,
            message=message,
            elapsed_s=round(elapsed, 3),
            rto_s=rto,
            rto_met=elapsed <= rto if measured and rto is not None else None,
            **extra,
        )

    def _guard_lease(self) -> None:
        if self.heartbeat.lost.is_set():
            # a step's end held for this step's start is written now, or its fence says
            # who holds the lease (LeaseLost)
            self.journal.flush()
            raise StoreError(
                "this worker lost the service lease; another worker may have taken the run over",
                run_id=self.run_id,
                hint=f"check `backout status {self.run_id}`",
            )


class _Groups:
    """The process groups one call of an action starts. When the call is over (or given up
    at its deadline: a plugin that ignores its timeout), nothing it started may run on,
    and it may start nothing more."""

    def __init__(self, journal: Callable[[Spawned], None]) -> None:
        self._journal = journal
        self._groups: list[Spawned] = []
        self._closed = False

    def spawned(self, group: Spawned) -> None:
        if self._closed:
            raise ActionError("the step's call is over: it may not start another program")
        self._journal(group)
        self._groups.append(group)

    def close(self) -> None:
        self._closed = True
        for group in self._groups:
            kill_orphan(group)  # at once when it already ended, as it normally has


def failed_checks(failed: list[Any]) -> str:
    return "; ".join(f"{c.name!r}: {c.reason}" for c in failed)


def _held(
    call: Callable[[], Outcome | None], seconds: float, timeout: float
) -> Callable[[], Outcome | None]:
    """``call``, after a rehearsal's hold; a hold that reaches the step's timeout is the
    step timing out (its action never runs). A stop ends the hold."""

    def held() -> Outcome | None:
        if STOP.wait(min(seconds, timeout)):
            raise Stopped(STOP.signum)
        if seconds >= timeout:
            return Outcome(False, f"timed out after {timeout:g}s (held by a slow fault)")
        return call()

    return held


def _data(outcome: Outcome, seconds: float) -> dict[str, Any]:
    return {
        "summary": outcome.summary,
        "output": outcome.output,
        "duration_s": round(seconds, 3),
        **outcome.detail,
    }


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
