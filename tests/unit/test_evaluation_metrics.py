"""The evaluation metrics of a process's watches (triggers/lag.py): one definition, served
by ``backout watch --metrics`` (a fleet's :class:`LagRecorder`) and by ``backout server``
(its workers' :class:`Evaluations`)."""

from __future__ import annotations

from prometheus_client import generate_latest

from backout.triggers.lag import Evaluations, LagRecorder


def test_each_reading_counts_the_triggers_it_reached_and_its_lag() -> None:
    evaluations = Evaluations()
    record = evaluations.for_service("shop@prod")
    record(0.02, ("errors", "latency"))
    record(0.03, ("errors",))
    record(0.01, ())  # a reading no trigger decided on (a judge's baseline side)
    text = generate_latest(evaluations.registry).decode()
    assert 'backout_trigger_evaluations_total{service="shop@prod",trigger="errors"} 2.0' in text
    assert 'backout_trigger_evaluations_total{service="shop@prod",trigger="latency"} 1.0' in text
    assert 'backout_watch_evaluation_lag_seconds_count{service="shop@prod"} 3.0' in text
    assert "backout_watch_deployments" not in text  # a fleet's gauge, not a server's


def test_a_fleets_recorder_serves_the_same_metrics_and_pools_the_lag() -> None:
    recorder = LagRecorder()
    recorder.for_service("a")(0.5, ("errors",))
    recorder.for_service("b")(0.1, ("errors",))
    text = generate_latest(recorder.registry).decode()
    assert 'backout_trigger_evaluations_total{service="a",trigger="errors"} 1.0' in text
    assert 'backout_trigger_evaluations_total{service="b",trigger="errors"} 1.0' in text
    assert "backout_watch_deployments 0.0" in text
    summary = recorder.summary()
    assert (summary.readings, summary.p50_s, summary.max_s) == (2, 0.1, 0.5)
