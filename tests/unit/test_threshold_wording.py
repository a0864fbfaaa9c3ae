"""A threshold's verdicts count the readings of a breach in proper English."""

from __future__ import annotations

from backout.telemetry import Reading
from backout.telemetry.detectors import Threshold


def ok(at: float, value: float) -> Reading:
    return Reading(at=at, status="ok", value=value, detail="errors at /metrics")


def test_one_reading_in_breach_is_one_sample() -> None:
    rule = Threshold(above=0.02, for_s=1.0, signal="canary_errors")
    first = rule.update(ok(0.0, 0.3))
    assert first.verdict == "marginal"
    assert first.summary == (
        "canary_errors 0.3 is above 0.02 since 0.0 s (1 sample); it fails once that lasts 1 s"
    )
    second = rule.update(ok(1.0, 0.3))
    assert second.verdict == "fail"
    assert second.summary == "canary_errors 0.3 has been above 0.02 for 1.0 s (2 samples)"


def test_a_breach_failing_at_its_first_reading_is_one_sample() -> None:
    decision = Threshold(below=0.99, signal="success ratio").update(ok(0.0, 0.5))
    assert decision.verdict == "fail"
    assert decision.summary == "success ratio 0.5 has been below 0.99 for 0.0 s (1 sample)"
