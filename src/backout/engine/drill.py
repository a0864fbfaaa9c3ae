"""A rehearsal as a flow over the same step machinery (``backout rehearse``).

1. steady state before: the plan's verify checks pass, or the drill ends before touching
   anything (``not_steady``);
2. break the service as a bad release would (``rehearsal.break``);
3. detection: the plan's triggers on real telemetry must fire within ``detect_within``
   (or detection is by hand: ``--trigger manual``);
4. the plan's backout steps and verify checks, with the rehearsal's faults acting on them;
5. steady state after, checked again (a failure fails the drill: fail closed);
6. a drill that failed reverts the break (its ``undo:`` steps), so staging is left as it
   was found; a drill that passed has nothing to revert, its backout restored the service.

A drill stopped gracefully (Ctrl-C, SIGTERM) once it has broken the service reverts the
break on the spot and ends ``stopped``: staging is not left broken until someone resumes
it. A second signal aborts the revert (the run is then resumed like any interrupted one).

Each phase reads where it is from the journal, so a resumed drill continues where it
stopped and never repeats a finished step.
"""

from __future__ import annotations

from dataclasses import dataclass

from backout.engine.flows import ATTENTION, Flow
from backout.engine.layout import in_turn
from backout.engine.steps import failed_checks
from backout.kernel.durations import format_duration
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus, StepStatus
from backout.proc import stop_all
from backout.stop import STOP, Stopped
from backout.triggers.watcher import Fired

UNDETECTED = "undetected"


@dataclass
class Drill(Flow):
    manual: bool = False
    detect_within: float = 60.0

    def run(self) -> None:
        try:
            self._drill()
        except Stopped as stop:
            if not self._revert_on_stop(stop):
                raise

    def _revert_on_stop(self, stop: Stopped) -> bool:
        """Revert the break after a graceful stop, and end the drill ``stopped``; False
        when there is nothing to revert (or an action could not be stopped)."""
        touched = [
            u
            for u in self.units
            if u.role == "forward" and self.view.steps[u.index].status is not StepStatus.PENDING
        ]
        if not touched or stop.abandoned or not stop_all():
            return False
        journal = self.runner.journal
        journal.append(
            EventKind.RUN_STOPPED,
            signal=stop.name,
            steps_stopped=True,
            message=f"stopped by {stop.name}: reverting the break",
        )
        STOP.reset()  # the revert runs to its end; a second signal stops it again
        if not self._reverse():
            return True  # waiting for an operator
        self.runner.finish(
            RunStatus.FAILED,
            f"rehearsal stopped by {stop.name}: the break was reverted",
            result="stopped",
            signal=stop.signum,
        )
        return True

    def _drill(self) -> None:
        if not self.manual and not self._triggers_ready():
            return
        if "before" not in self.view.steady:
            failures = self.runner.steady_state("before")
            if failures:
                self.runner.finish(
                    RunStatus.FAILED,
                    "not started: the service is not in its steady state: "
                    + "; ".join(f"{f['check']!r}: {f['reason']}" for f in failures),
                    result="not_steady",
                )
                return
        if self.view.backout_reason is None:
            fired = self._break_and_detect()
            if fired is ATTENTION:
                return
            self.runner.journal.append(EventKind.BACKOUT_STARTED, **fired.to_json())
        if not self._drill_backout():
            return
        problems = self._problems()
        if problems and not self._reverse():
            return
        if problems:
            self.runner.finish(
                RunStatus.FAILED, "rehearsal failed: " + "; ".join(problems), result="failed"
            )
            return
        for unit in (u for u in self.units if u.role == "reverse"):
            self.runner.skip(unit, "the drill's backout restored the service")
        detected = "detection by hand" if self.manual else "detected"
        self.runner.finish(
            RunStatus.SUCCEEDED,
            f"rehearsal passed: {detected}, backed out, verified, steady state restored",
            result="rehearsed",
        )

    def _break_and_detect(self) -> Fired:
        for unit in (u for u in self.units if u.role == "forward"):
            result = self.runner.bring(unit)
            if result == "attention":
                return ATTENTION
            if result == "failed":
                summary = self.view.steps[unit.index].summary
                return Fired("break", "step", f"the break step {unit.name!r} failed: {summary}")
        if self.manual:
            return Fired("manual", "manual", "detection by hand (--trigger manual)")
        journal = self.runner.journal
        journal.append(
            EventKind.CHECKPOINT_STARTED,
            stage=0,
            name="detect",
            hold_s=self.detect_within,
            approve=False,
        )
        fired = self.watcher().watch(self.detect_within)
        if fired:
            journal.append(EventKind.TRIGGER_FIRED, stage=0, **fired.to_json())
            return fired
        within = format_duration(self.detect_within)
        return Fired(UNDETECTED, UNDETECTED, f"no trigger fired within {within}")

    def _drill_backout(self) -> bool:
        """The plan's steps, then its checks (a failed step stops the steps), then the
        steady state after. False when the run now waits for an operator."""
        for unit, followed in in_turn([u for u in self.units if u.role == "backout"]):
            result = self.runner.bring(unit, followed=followed)
            if result == "attention":
                return False
            if result == "failed":
                return True
        self.runner.verify(finish=False)
        restored = self.view.verified or not self.runner.plan.verify
        if restored and "after" not in self.view.steady:
            self.runner.steady_state("after")
        return True

    def _problems(self) -> list[str]:
        """What failed the drill, from the journal (so a resumed drill says the same)."""
        reason = self.view.backout_reason or {}
        problems = []
        if reason.get("trigger_kind") in (UNDETECTED, "step"):
            problems.append(str(reason.get("summary")))
        backout = [u for u in self.units if u.role == "backout"]
        failed = [
            u
            for u in backout
            if self.view.steps[u.index].status is StepStatus.FAILED and u.step.on_failure == "stop"
        ]
        for unit in failed:
            problems.append(f"step {unit.name!r} failed: {self.view.steps[unit.index].summary}")
        if not failed:
            bad = [c for c in self.view.checks if c.passed is False]
            if bad:
                problems.append(f"verification failed: {failed_checks(bad)}")
            elif self.view.steady.get("after") is False:
                problems.append("the service is not back in its steady state")
        return problems


def phases(events: list[Event]) -> dict[str, float | None]:
    """A drill's timings from its journal, in seconds: ``break_s`` (the break steps),
    ``detect_s`` (service broken to trigger fired; None when detection was by hand or
    failed), ``backout_s`` (backout started to its last step), ``verify_s`` (the checks),
    ``total_s`` (backout started to verified: what the rto budgets)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for event in events:
        first.setdefault(event.kind, event.at)
        last[event.kind] = event.at
    started = first.get(EventKind.BACKOUT_STARTED)
    checks_done = last.get(EventKind.CHECK_FINISHED)
    verify_from = first.get(EventKind.VERIFY_STARTED)
    backout_steps = [
        e.at
        for e in events
        if e.kind == EventKind.STEP_FINISHED and started is not None and e.at >= started
    ]
    backout_end = verify_from or (max(backout_steps) if backout_steps else None)
    detect_from = first.get(EventKind.CHECKPOINT_STARTED)
    fired = first.get(EventKind.TRIGGER_FIRED)
    breaks = [
        e.at
        for e in events
        if e.kind == EventKind.STEP_FINISHED and (started is None or e.at < started)
    ]
    end = checks_done or backout_end
    return {
        "break_s": _span(first.get(EventKind.STEP_STARTED), max(breaks) if breaks else None),
        "detect_s": _span(detect_from, fired),
        "backout_s": _span(started, backout_end),
        "verify_s": _span(verify_from, checks_done),
        "total_s": _span(started, end),
    }


def _span(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None
