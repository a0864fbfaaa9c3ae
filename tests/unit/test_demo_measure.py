"""What the demo reports, read from a journal: fault, detection and restore times, the
phase of each step, the trigger that fired, and the timeline's lines for engine events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backout.demo.measure import Moments, fault_step, moments, phases, trigger_of
from backout.demo.timeline import engine_line
from backout.engine.layout import layout
from backout.engine.view import new_view
from backout.kernel.events import Event
from backout.plans import load_plan
from backout.spec.models import Plan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(EXAMPLE).plan


def event(kind: str, at: float, step: int | None = None, **data: Any) -> Event:
    return Event("run", 1, at, kind, step, None, data)


def test_the_fault_step_is_the_restart_onto_the_new_release(plan: Plan) -> None:
    index = fault_step(plan)
    unit = layout(plan, "deploy")[index]
    assert unit.role == "forward"
    assert unit.step.kind == "run"
    assert unit.step.options[0] == "./bin/restart"


def test_each_step_has_its_phase(plan: Plan) -> None:
    assert phases(plan) == ["deploy", "deploy", "undo", "undo", "backout", "backout", "backout"]


def test_a_plan_without_deploy_steps_has_no_fault_step(plan: Plan) -> None:
    with pytest.raises(ValueError, match="no deploy steps"):
        fault_step(plan.model_copy(update={"deploy": None}))


def test_moments_come_from_the_journal() -> None:
    events = [
        event("step_finished", 100.0, 0, outcome="succeeded"),
        event("step_finished", 100.5, 1, outcome="succeeded"),
        event("trigger_fired", 101.7, stage=0, trigger="t"),
        event("run_finished", 103.0, outcome="succeeded", result="backed_out"),
    ]
    found = moments(events, fault_index=1)
    assert found == Moments(100.5, 101.7, 103.0)
    assert found.since_fault(found.detected_at) == pytest.approx(1.2)
    assert found.since_fault(found.restored_at) == pytest.approx(2.5)


def test_a_promoted_or_failed_run_restored_nothing() -> None:
    for outcome, result in (("succeeded", "promoted"), ("failed", "failed")):
        events = [
            event("step_finished", 100.0, 1, outcome="succeeded"),
            event("run_finished", 115.0, outcome=outcome, result=result),
        ]
        found = moments(events, fault_index=1)
        assert found == Moments(100.0, None, None)
        assert found.since_fault(found.restored_at) is None


def test_a_restart_that_failed_put_no_bad_release_live() -> None:
    events = [
        event("step_finished", 100.0, 1, outcome="failed"),
        event("trigger_fired", 100.1, trigger="rollout: restart", trigger_kind="step"),
    ]
    assert moments(events, fault_index=1) == Moments(None, 100.1, None)


def test_no_fault_means_no_times() -> None:
    found = moments([event("trigger_fired", 5.0, trigger="t")], fault_index=1)
    assert found.since_fault(found.detected_at) is None


def test_the_trigger_is_flattened_from_the_backout_reason() -> None:
    reason = {
        "trigger": "errors up",
        "trigger_kind": "sequential",
        "summary": "14 of 46",
        "evidence": {
            "verdict": "fail",
            "statistic": 8.2,
            "threshold": 5.99,
            "summary": "14 of 46",
            "evidence": {"events": 14, "trials": 46},
        },
    }
    assert trigger_of(reason) == {
        "name": "errors up",
        "kind": "sequential",
        "summary": "14 of 46",
        "statistic": 8.2,
        "threshold": 5.99,
        "evidence": {"events": 14, "trials": 46},
    }
    assert trigger_of(None) is None


def test_the_timeline_tells_checkpoints_triggers_and_skips() -> None:
    view = new_view("run", ["a: switch", "undo a: switch"], ["healthy"])
    fired = event("trigger_fired", 1.0, trigger="t", trigger_kind="sequential", summary="odds")
    assert engine_line(fired, view) == "detected: 't' (sequential) fired: odds"
    checkpoint = event("checkpoint_started", 1.0, stage=0, name="a", hold_s=15.0)
    assert engine_line(checkpoint, view) == "checkpoint 'a': watching the triggers for up to 15s"
    skipped = event("step_skipped", 1.0, 1, reason="its forward step never ran")
    assert engine_line(skipped, view) == (
        "step 2 skipped: undo a: switch (its forward step never ran)"
    )
    marginal = event("trigger_evaluated", 1.0, trigger="t", verdict="marginal", summary="s")
    assert engine_line(marginal, view) == "trigger 't' marginal: s"
    failing = event("trigger_evaluated", 1.0, trigger="t", verdict="fail", summary="s")
    assert engine_line(failing, view) is None  # the trigger_fired line says it
