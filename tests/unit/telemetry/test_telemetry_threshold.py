"""``threshold`` and ``relative`` on crafted sequences of readings."""

from __future__ import annotations

import pytest

from backout.telemetry import Reading
from backout.telemetry.detectors import Relative, Threshold


def ok(at: float, value: float) -> Reading:
    return Reading(at=at, status="ok", value=value, detail="errors at /metrics")


def verdicts(detector: Threshold | Relative, values: list[float | None]) -> list[str]:
    out = []
    for at, value in enumerate(values):
        reading = ok(at, value) if value is not None else Reading(at=at, status="timeout")
        out.append(detector.update(reading).verdict)
    return out


def test_sustained_breach_fails_once_it_lasts_for() -> None:
    rule = Threshold(above=0.05, for_s=10.0, signal="error ratio")
    decisions = [rule.update(ok(float(t), 0.071)) for t in range(12)]
    assert [d.verdict for d in decisions[:10]] == ["marginal"] * 10
    assert decisions[10].verdict == "fail"  # t=10: held for 10 s, 11 samples
    assert decisions[10].summary == (
        "error ratio 0.071 has been above 0.05 for 10.0 s (11 samples)"
    )
    assert decisions[10].evidence["breach_started_at"] == 0.0
    assert (decisions[10].statistic, decisions[10].threshold) == (0.071, 0.05)


def test_a_blip_or_a_gap_starts_the_clock_over() -> None:
    rule = Threshold(above=0.05, for_s=3.0)
    assert verdicts(rule, [0.1, 0.1, 0.1, 0.01, 0.1, 0.1, 0.1]) == [
        "marginal", "marginal", "marginal", "pass", "marginal", "marginal", "marginal",
    ]  # fmt: skip
    rule = Threshold(above=0.05, for_s=3.0)
    assert verdicts(rule, [0.1, 0.1, None, 0.1, 0.1, 0.1, 0.1]) == [
        "marginal", "marginal", "no_data", "marginal", "marginal", "marginal", "fail",
    ]  # fmt: skip


def test_at_the_limit_is_not_a_breach_and_below_works() -> None:
    assert verdicts(Threshold(above=0.05), [0.05, 0.0500001]) == ["pass", "fail"]
    assert verdicts(Threshold(below=0.99, signal="success ratio"), [0.995, 0.98]) == [
        "pass",
        "fail",
    ]


def test_no_data_decision_carries_the_reason() -> None:
    decision = Threshold(above=1.0).update(
        Reading(at=5.0, status="timeout", detail="GET http://x/metrics: no answer within 2s")
    )
    assert decision.verdict == "no_data"
    assert "no answer within 2s" in decision.summary
    assert decision.evidence["status"] == "timeout"


def test_threshold_needs_one_side() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Threshold()
    with pytest.raises(ValueError, match="exactly one"):
        Threshold(above=1.0, below=0.0)


def test_relative_limit_is_baseline_plus_share() -> None:
    rule = Relative(0.01, worse_by=0.5, for_s=2.0, signal="error ratio")
    assert verdicts(rule, [0.014, 0.016, 0.016, 0.016]) == ["pass", "marginal", "marginal", "fail"]
    decision = rule.update(ok(4.0, 0.02))
    assert decision.threshold == pytest.approx(0.015)
    assert "above 0.015 (baseline 0.01 + 50%)" in decision.summary
    assert decision.evidence["baseline"] == 0.01


def test_relative_lower_is_worse() -> None:
    rule = Relative(200.0, worse_by=0.25, direction="down", signal="requests per second")
    assert verdicts(rule, [160.0, 149.0]) == ["pass", "fail"]


def test_relative_min_change_keeps_a_zero_baseline_from_firing_on_one_error() -> None:
    assert verdicts(Relative(0.0, worse_by=0.5), [0.001]) == ["fail"]
    assert verdicts(Relative(0.0, worse_by=0.5, min_change=0.01), [0.001, 0.02]) == [
        "pass",
        "fail",
    ]
