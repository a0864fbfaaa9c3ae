"""Fold a journal into the run's state: the journal is the truth, status is derived from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from backout.errors import TransitionError
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus, StepStatus, check_run, check_step


@dataclass
class StepView:
    index: int
    name: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    summary: str = ""
    output: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        """How long the step's last execution took: from the first attempt of the executor
        that finished it (its retries and their delays included) to its end. A step a crash
        interrupted counts from the resumed attempt, never the time no executor was alive;
        a step marked done by an operator has none (``None``)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)


@dataclass
class CheckView:
    index: int
    name: str
    passed: bool | None = None
    reason: str = ""
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class RunView:
    run_id: str
    status: RunStatus = RunStatus.PENDING
    steps: list[StepView] = field(default_factory=list)
    checks: list[CheckView] = field(default_factory=list)
    message: str = ""
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_seq: int = 0
    checkpoints_passed: set[int] = field(default_factory=set)
    backout_reason: dict[str, Any] | None = None
    backout_started_at: float | None = None
    result: str | None = None
    steady: dict[str, bool] = field(default_factory=dict)  # rehearsal phase -> passed

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)


def new_view(run_id: str, step_names: list[str], check_names: list[str]) -> RunView:
    return RunView(
        run_id,
        steps=[StepView(i, n) for i, n in enumerate(step_names)],
        checks=[CheckView(i, n) for i, n in enumerate(check_names)],
    )


def apply(view: RunView, event: Event) -> None:
    """Apply one event, enforcing the transition rules; raises TransitionError."""
    if event.seq != view.last_seq + 1:
        raise TransitionError(
            f"journal gap: event {event.seq} after {view.last_seq}", run_id=view.run_id
        )
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        raise TransitionError(f"unknown journal event {event.kind!r}", run_id=view.run_id)
    handler(view, event)
    view.last_seq = event.seq


def fold(view: RunView, events: list[Event]) -> RunView:
    for event in events:
        apply(view, event)
    return view


def trial(view: RunView, event: Event) -> RunView:
    """A copy of ``view`` that ``event`` can be applied to without touching ``view``.

    Copies only what an event can change (the run's own fields, the step and the check the
    event names, its containers), sharing every other step and check: a plan's size adds
    only a list of references to copy, where a deep copy copied every step. Handlers assign
    new values to a step's or check's fields and never change them in place, so sharing
    the values (a step's ``detail``, the ``backout_reason``) is safe."""
    draft = replace(
        view,
        steps=list(view.steps),
        checks=list(view.checks),
        checkpoints_passed=set(view.checkpoints_passed),
        steady=dict(view.steady),
    )
    if event.kind in _TOUCHES_EVERY_STEP:
        draft.steps = [replace(step) for step in view.steps]
    elif event.step is not None:
        if 0 <= event.step < len(view.steps):
            draft.steps[event.step] = replace(view.steps[event.step])
        if 0 <= event.step < len(view.checks):
            draft.checks[event.step] = replace(view.checks[event.step])
    return draft


def _run_to(view: RunView, target: RunStatus) -> None:
    check_run(view.status, target, view.run_id)
    view.status = target


def _step(view: RunView, event: Event) -> StepView:
    if event.step is None or not 0 <= event.step < len(view.steps):
        raise TransitionError(f"{event.kind} names no step of this plan", run_id=view.run_id)
    return view.steps[event.step]


def _step_to(view: RunView, step: StepView, target: StepStatus) -> None:
    check_step(step.status, target, view.run_id, step.name)
    step.status = target


def _created(view: RunView, event: Event) -> None:
    if view.last_seq != 0:
        raise TransitionError("run_created must be the first event", run_id=view.run_id)
    view.created_at = event.at


def _started(view: RunView, event: Event) -> None:
    _run_to(view, RunStatus.RUNNING)
    view.started_at = view.started_at or event.at


def _resumed(view: RunView, event: Event) -> None:
    _run_to(view, RunStatus.RUNNING)
    view.message = ""
    for step in view.steps:
        if step.status is StepStatus.RUNNING:  # interrupted: its time restarts if it reruns
            step.started_at = None


def _step_started(view: RunView, event: Event) -> None:
    step = _step(view, event)
    _step_to(view, step, StepStatus.RUNNING)
    step.attempts = event.attempt or step.attempts + 1
    step.started_at = step.started_at or event.at


def _step_retrying(view: RunView, event: Event) -> None:
    step = _step(view, event)
    _step_to(view, step, StepStatus.RUNNING)
    step.summary = str(event.data.get("summary", ""))


def _step_finished(view: RunView, event: Event) -> None:
    step = _step(view, event)
    _step_to(view, step, StepStatus(event.data["outcome"]))
    step.finished_at = event.at
    if not event.data.get("resolved"):  # not started (a template error): it took no time
        step.started_at = step.started_at or event.at
    step.summary = str(event.data.get("summary", ""))
    step.output = str(event.data.get("output", ""))
    step.detail = {k: v for k, v in event.data.items() if k not in _STEP_KEYS}


def _step_skipped(view: RunView, event: Event) -> None:
    step = _step(view, event)
    _step_to(view, step, StepStatus.SKIPPED)
    step.finished_at = event.at
    step.summary = str(event.data.get("reason", ""))


def _check(view: RunView, event: Event) -> CheckView:
    if event.step is None or not 0 <= event.step < len(view.checks):
        raise TransitionError(f"{event.kind} names no check of this plan", run_id=view.run_id)
    return view.checks[event.step]


def _check_started(view: RunView, event: Event) -> None:
    check = _check(view, event)
    if check.passed is not None:
        raise TransitionError(f"check {check.name!r} already finished", run_id=view.run_id)
    check.started_at = check.started_at or event.at


def _check_finished(view: RunView, event: Event) -> None:
    check = _check(view, event)
    if check.passed is not None:
        raise TransitionError(f"check {check.name!r} already finished", run_id=view.run_id)
    check.passed = bool(event.data["passed"])
    check.reason = str(event.data.get("reason", ""))
    check.attempts = int(event.data.get("attempts", 1))
    check.finished_at = event.at


def _needs_attention(view: RunView, event: Event) -> None:
    _run_to(view, RunStatus.NEEDS_ATTENTION)
    view.message = str(event.data.get("message", ""))


def _finished(view: RunView, event: Event) -> None:
    _run_to(view, RunStatus(event.data["outcome"]))
    view.message = str(event.data.get("message", ""))
    view.finished_at = event.at
    view.result = event.data.get("result")


def _abandoned(view: RunView, event: Event) -> None:
    """A person gave up on a run that needs attention: it ends failed, nothing resumes it."""
    if view.status is not RunStatus.NEEDS_ATTENTION:
        raise TransitionError(
            f"only a run that needs attention can be abandoned; this one is {view.status}",
            run_id=view.run_id,
        )
    _run_to(view, RunStatus.FAILED)
    view.message = str(event.data.get("message", ""))
    view.finished_at = event.at
    view.result = "abandoned"


def _checkpoint_passed(view: RunView, event: Event) -> None:
    view.checkpoints_passed.add(int(event.data["stage"]))


def _backout_started(view: RunView, event: Event) -> None:
    if view.backout_reason is not None:
        raise TransitionError("the backout has already started", run_id=view.run_id)
    view.backout_reason = dict(event.data)
    view.backout_started_at = event.at


def _stopped(view: RunView, event: Event) -> None:
    """A graceful stop: the run stays ``running`` (interrupted) until it is resumed."""
    view.message = str(event.data.get("message", ""))


def _note(view: RunView, event: Event) -> None:
    """Informational events (decisions, warnings) change no state."""


def _steady_state(view: RunView, event: Event) -> None:
    view.steady[str(event.data.get("phase"))] = bool(event.data.get("passed"))


_HANDLERS: dict[str, Callable[[RunView, Event], None]] = {
    EventKind.STEADY_STATE: _steady_state,
    EventKind.FAULT_INJECTED: _note,
    EventKind.RUN_CREATED: _created,
    EventKind.RUN_STARTED: _started,
    EventKind.RUN_RESUMED: _resumed,
    EventKind.STEP_STARTED: _step_started,
    EventKind.STEP_RETRYING: _step_retrying,
    EventKind.STEP_FINISHED: _step_finished,
    EventKind.STEP_SKIPPED: _step_skipped,
    EventKind.VERIFY_STARTED: _note,
    EventKind.CHECK_STARTED: _check_started,
    EventKind.CHECK_FINISHED: _check_finished,
    EventKind.RUN_NEEDS_ATTENTION: _needs_attention,
    EventKind.RUN_FINISHED: _finished,
    EventKind.OPERATOR_DECISION: _note,
    EventKind.WARNING: _note,
    EventKind.WATCH_STARTED: _note,
    EventKind.CHECKPOINT_STARTED: _note,
    EventKind.CHECKPOINT_PASSED: _checkpoint_passed,
    EventKind.TRIGGER_EVALUATED: _note,
    EventKind.TRIGGER_FIRED: _note,
    EventKind.STAGE_APPROVED: _note,
    EventKind.ALERT_REJECTED: _note,
    EventKind.ALERT_IGNORED: _note,
    EventKind.BACKOUT_STARTED: _backout_started,
    EventKind.PROMOTED: _note,
    EventKind.STEP_PROCESS: _note,
    EventKind.RUN_STOPPED: _stopped,
    EventKind.RUN_ABANDONED: _abandoned,
}
_STEP_KEYS = frozenset({"outcome", "summary", "output", "duration_s", "resolved"})
# events whose handler may change steps other than the one the event names
_TOUCHES_EVERY_STEP = frozenset({EventKind.RUN_RESUMED})
