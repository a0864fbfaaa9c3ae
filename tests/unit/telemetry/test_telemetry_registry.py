"""The source registry and its entry points, pooling, and decisions as journal JSON."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from backout.telemetry import SOURCES, Reading, pool
from backout.telemetry.detectors import MannWhitneyJudge, Relative, Sequential, Threshold


def test_built_in_sources_are_registered_and_declared_as_entry_points() -> None:
    assert SOURCES.names() == ["command", "http_probe", "prometheus", "scrape"]
    declared = {ep.name: ep.load() for ep in entry_points(group="backout.telemetry")}
    for name in SOURCES.names():
        assert type(SOURCES.get(name)) is declared[name]


def test_pool_adds_counts_and_samples() -> None:
    pooled = pool(
        [
            Reading(at=1, status="ok", value=0.1, events=1, trials=10, samples=(0.2,)),
            Reading(at=2, status="timeout"),
            Reading(at=3, status="ok", value=0.0, events=0, trials=30, samples=(0.3, 0.4)),
        ]
    )
    assert (pooled.status, pooled.events, pooled.trials, pooled.at) == ("ok", 1, 40, 3)
    assert pooled.value == pytest.approx(0.025)
    assert pooled.samples == (0.2, 0.3, 0.4)
    assert pool([Reading(at=1, status="error")]).status == "no_data"


def test_decisions_are_strict_json_even_at_extremes() -> None:
    quiet = Sequential(0.01)
    for second in range(1, 40):
        decision = quiet.update(Reading(at=second, status="ok", events=0, trials=100_000))
    assert decision.verdict == "pass"
    assert "are 0 to 1" in decision.summary
    judge = MannWhitneyJudge(min_samples=2)
    judge.observe_baseline(Reading(at=0, status="ok", samples=(0.1, 0.2, 0.3)))
    decisions = [
        decision,
        judge.update(Reading(at=1, status="ok", samples=(0.5, 0.6, 0.7))),
        Threshold(above=1.0).update(Reading(at=1, status="timeout", detail="slow")),
        Relative(0.01, worse_by=0.5).update(Reading(at=1, status="ok", value=0.02)),
    ]
    for item in decisions:
        json.dumps(item.as_dict(), allow_nan=False)
        assert item.summary
