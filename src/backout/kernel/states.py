"""Run and step states, and the rules for moving between them.

Each rule is a FROM set and a TO set: a transition not listed is a
:class:`~backout.errors.TransitionError`, never a silent overwrite.
"""

from __future__ import annotations

from enum import StrEnum

from backout.errors import TransitionError


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_ATTENTION = "needs_attention"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


RUN_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED})
RUN_ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.NEEDS_ATTENTION})
STEP_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED})

RUN_RULES: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED}),
    # RUNNING -> RUNNING is a resume after a crash
    RunStatus.RUNNING: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.NEEDS_ATTENTION}
    ),
    RunStatus.NEEDS_ATTENTION: frozenset({RunStatus.RUNNING, RunStatus.FAILED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
}

STEP_RULES: dict[StepStatus, frozenset[StepStatus]] = {
    # PENDING -> FAILED: it could not start (a template error); nothing ran
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED, StepStatus.FAILED}),
    # RUNNING -> RUNNING is the next attempt (retry, or re-run of an interrupted step)
    StepStatus.RUNNING: frozenset(
        {StepStatus.RUNNING, StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED}
    ),
    StepStatus.SUCCEEDED: frozenset(),
    StepStatus.FAILED: frozenset(),
    StepStatus.SKIPPED: frozenset(),
}


def check_run(current: RunStatus, target: RunStatus, run_id: str) -> None:
    if target not in RUN_RULES[current]:
        raise TransitionError(f"a run cannot go from {current} to {target}", run_id=run_id)


def check_step(current: StepStatus, target: StepStatus, run_id: str, step: str) -> None:
    if target not in STEP_RULES[current]:
        raise TransitionError(
            f"a step cannot go from {current} to {target}", run_id=run_id, step=step
        )
