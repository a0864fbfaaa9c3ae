"""The units a run executes, in journal order, for each kind of run.

A backout run (``backout run``) and a watch (``backout watch``) execute the plan's
``steps:``. A deploy (``backout deploy``) lays out every stage's forward steps, then their
reverses in reverse order, then the plan's ``steps:`` — all indexed up front, so the
journal's step numbers mean the same thing before and after a crash. A rehearsal
(``backout rehearse``) lays out the same way with ``rehearsal.break`` as its one stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from backout.spec.models import DeployStep, Plan, Step

Mode = Literal["backout", "deploy", "watch", "rehearsal"]
Role = Literal["backout", "forward", "reverse"]


@dataclass(frozen=True)
class Unit:
    index: int
    name: str
    step: Step  # for a reverse unit: the forward step it undoes
    role: Role
    stage: int | None = None
    forward: int | None = None  # a reverse unit's forward unit


def stages(plan: Plan, mode: Mode) -> list[tuple[str, list[DeployStep]]]:
    """The forward stages of a run: a deploy's stages, a rehearsal's break, else none."""
    if mode == "deploy" and plan.deploy is not None:
        return [(stage.name, stage.steps) for stage in plan.deploy.stages]
    if mode == "rehearsal" and plan.rehearsal is not None:
        return [("break", plan.rehearsal.break_)]
    return []


def layout(plan: Plan, mode: Mode) -> list[Unit]:
    units: list[Unit] = []
    if stages(plan, mode):
        for s, (name, steps) in enumerate(stages(plan, mode)):
            units += [
                Unit(len(units) + i, f"{name}: {step.name}", step, "forward", s)
                for i, step in enumerate(steps)
            ]
        forwards = list(units)
        units += [
            Unit(
                len(forwards) + i, f"undo {unit.name}", unit.step, "reverse", unit.stage, unit.index
            )
            for i, unit in enumerate(reversed(forwards))
        ]
    return units + [
        Unit(len(units) + i, step.name, step, "backout") for i, step in enumerate(plan.steps)
    ]


def in_turn(units: Sequence[Unit]) -> Iterator[tuple[Unit, bool]]:
    """Each unit, with whether another comes right after it: a step that succeeds then has
    its end written with that unit's first event (``StepRunner.bring``'s ``followed``)."""
    for n, unit in enumerate(units, 1):
        yield unit, n < len(units)
