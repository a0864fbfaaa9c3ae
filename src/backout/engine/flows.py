"""The three kinds of run, as flows over the same step machinery.

* backout: the plan's ``steps:``, then ``verify:``.
* watch: watch the triggers for a while; if one fires, back out.
* deploy: each stage's forward steps and its checkpoint; on a trigger, reverse exactly the
  stages touched so far (newest first), then the plan's ``steps:`` and ``verify:``; when
  every checkpoint passes, promote and record the new baseline.

Each flow reads where it is from the journal, so a resumed run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backout.actions import ACTIONS
from backout.actions.base import Action
from backout.engine.layout import Mode, Unit, in_turn
from backout.engine.steps import StepRunner
from backout.engine.view import RunView
from backout.errors import UsageError
from backout.kernel.events import EventKind
from backout.kernel.states import RunStatus, StepStatus
from backout.proc import prepare_spare
from backout.spec.models import Stage
from backout.triggers.watcher import Fired, Watcher

ATTENTION = Fired("attention", "attention", "the run needs an operator")


@dataclass
class Flow:
    runner: StepRunner
    units: list[Unit]
    mode: Mode
    watcher: Callable[[], Watcher]
    watch_for: float = 0.0
    promote: Callable[[], dict[str, Any]] | None = None
    # where the trigger fired, journalled with it (a deploy's stage)
    _fired_at: dict[str, Any] = field(default_factory=dict)
    _rehearsed: bool = False  # the verdict's transaction, once (_rehearse_verdict)

    @property
    def view(self) -> RunView:
        return self.runner.journal.view

    def run(self) -> None:
        if self.mode != "backout" and not self._triggers_ready():
            return
        if self.mode != "backout" and self.view.backout_reason is None:
            fired = self._forward() if self.mode == "deploy" else self._watch()
            if fired is ATTENTION:
                return
            if fired is None:
                self._done()
                return
            # the verdict and the backout it starts, in one transaction: one disk flush
            # between an alert and the first backout step, and never one without the other;
            # meanwhile the zygote forks the first backout step's shim
            prepare_spare()
            self.runner.journal.append_together(
                (EventKind.TRIGGER_FIRED, {**self._fired_at, **fired.to_json()}),
                (EventKind.BACKOUT_STARTED, fired.to_json()),
            )
        if self.mode == "deploy" and not self._reverse():
            return
        self._backout()

    def _triggers_ready(self) -> bool:
        """Build every trigger before the first forward step: a trigger that cannot work
        (no baseline for it) must stop the deploy before it shifts any traffic."""
        try:
            self.watcher()
        except UsageError as exc:
            if self.view.steps and any(s.status is not StepStatus.PENDING for s in self.view.steps):
                raise
            self.runner.finish(
                RunStatus.FAILED,
                f"not started: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""),
            )
            return False
        return True

    # --- watch ---------------------------------------------------------------------------
    def _watch(self) -> Fired | None:
        # ready before it says it watches: an alert's backout starts at once, nothing to load
        self.runner.ready(self.units)
        self.watcher().ready()
        self._rehearse_verdict()
        self.runner.journal.append(EventKind.WATCH_STARTED, seconds=self.watch_for)
        return self.watcher().watch(self.watch_for)

    def _rehearse_verdict(self) -> None:
        """The verdict's transaction (``trigger_fired`` and ``backout_started``, with the
        audit records, the status page's incident and the notifications they make), written
        and rolled back before the watch begins (:meth:`Journal.rehearse`): when a trigger
        fires, each of its statements runs compiled. Once per run (a deploy's first
        checkpoint). Only a shortcut: if the rehearsal fails (a notification template that
        needs a real alert's fields …), the verdict compiles them itself, as before."""
        if self._rehearsed:
            return
        self._rehearsed = True
        triggers = self.runner.plan.triggers
        first = triggers[0] if triggers else None
        sample = Fired(
            first.name if first else "rehearsal",
            first.kind if first else "alertmanager",
            "a rehearsal of the verdict's transaction (rolled back)",
        ).to_json()
        try:
            self.runner.journal.rehearse(
                (EventKind.TRIGGER_FIRED, {**self._fired_at, **sample}),
                (EventKind.BACKOUT_STARTED, sample),
            )
        except Exception:  # nothing was written; the real verdict compiles its statements
            return

    # --- deploy --------------------------------------------------------------------------
    def _forward(self) -> Fired | None:
        stages = self.runner.plan.deploy.stages if self.runner.plan.deploy else []
        for s, stage in enumerate(stages):
            if s in self.view.checkpoints_passed:
                continue
            units = [u for u in self.units if u.role == "forward" and u.stage == s]
            for unit, followed in in_turn(units):
                result = self.runner.bring(unit, followed=followed)
                if result == "attention":
                    return ATTENTION
                if result == "failed":
                    summary = self.view.steps[unit.index].summary
                    failure = Fired(
                        unit.name,
                        "step",
                        f"forward step {unit.name!r} failed: {summary}",
                        {"stage": s + 1},
                    )
                    return failure
            checkpoint = self._checkpoint(s, stage)
            if checkpoint:
                return checkpoint
        return None

    def _checkpoint(self, s: int, stage: Stage) -> Fired | None:
        journal = self.runner.journal
        self.runner.ready(self.units)  # before it holds: a trigger's backout starts at once
        watcher = self.watcher()
        watcher.ready()
        self._rehearse_verdict()
        journal.append(
            EventKind.CHECKPOINT_STARTED,
            stage=s,
            name=stage.name,
            hold_s=stage.hold,
            approve=stage.approve,
        )
        approval = (lambda: watcher.approved(s)) if stage.approve else None
        fired = watcher.watch(stage.hold, approval)
        if fired:
            self._fired_at = {"stage": s}  # journalled with it, in run()
            return fired
        journal.append(
            EventKind.CHECKPOINT_PASSED, stage=s, name=stage.name, verdicts=watcher.summaries()
        )
        return None

    def _reverse(self) -> bool:
        """Undo the touched stages, newest first; a unit that never ran is skipped."""
        for unit, followed in in_turn([u for u in self.units if u.role == "reverse"]):
            reason = self._why_not_reverse(unit)
            if reason:
                self.runner.skip(unit, reason)
                continue
            if self.runner.bring(unit, followed=followed) == "attention":
                return False
        return True

    def _why_not_reverse(self, unit: Unit) -> str:
        forward = self.view.steps[unit.forward or 0]
        has_undo = getattr(unit.step, "undo", None) is not None
        if forward.status in (StepStatus.PENDING, StepStatus.SKIPPED):
            return "its forward step never ran"
        if has_undo:
            return ""
        if type(ACTIONS.get(unit.step.kind)).reverse is Action.reverse:
            return f"{unit.step.kind} has no reverse and no `undo:`; the plan's steps cover it"
        if forward.status is not StepStatus.SUCCEEDED:
            return "its forward step did not report what it changed; the plan's steps cover it"
        return ""

    # --- the end -------------------------------------------------------------------------
    def _backout(self) -> None:
        for unit, followed in in_turn([u for u in self.units if u.role == "backout"]):
            result = self.runner.bring(unit, followed=followed)
            if result == "attention":
                return
            if result == "failed":
                summary = self.view.steps[unit.index].summary
                self._drain_inbox()
                self.runner.finish(
                    RunStatus.FAILED,
                    f"step {unit.index + 1} {unit.name!r} failed: {summary}",
                    **self._result("failed"),
                )
                return
        self._drain_inbox()
        if not self.runner.verify():
            return
        verified = (
            "finished and verified" if self.runner.plan.verify else "finished (no verify checks)"
        )
        self.runner.finish(
            RunStatus.SUCCEEDED, f"backout {verified}" + self._why(), **self._result("backed_out")
        )

    def _drain_inbox(self) -> None:
        """Journal what arrived while the run backed out (late alert copies, a second
        `backout trigger`): every notification leaves a record, none acts now."""
        if self.mode != "backout":
            self.watcher().drain()

    def _why(self) -> str:
        reason = self.view.backout_reason
        return f" after {reason['trigger']!r}: {reason['summary']}" if reason else ""

    def _result(self, result: str) -> dict[str, Any]:
        if self.mode == "backout":
            return {}
        reason = self.view.backout_reason or {}
        return {"result": result, "trigger": reason.get("trigger")}

    def _done(self) -> None:
        if self.mode == "deploy":
            snapshot = self.promote() if self.promote else {}
            self.runner.journal.append(EventKind.PROMOTED, **snapshot)
            stages = len(self.view.checkpoints_passed)
            self.runner.finish(
                RunStatus.SUCCEEDED,
                f"promoted: {stages} stage(s) passed their checkpoints",
                result="promoted",
            )
        else:
            self.runner.finish(
                RunStatus.SUCCEEDED, f"no trigger fired in {self.watch_for:g}s", result="healthy"
            )
