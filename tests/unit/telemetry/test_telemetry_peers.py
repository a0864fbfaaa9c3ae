"""Flagger's and Argo Rollouts' rules, replayed on one reading a second."""

from __future__ import annotations

import pytest

from backout.telemetry import Reading
from backout.telemetry.detectors import ArgoRule, FlaggerRule
from backout.telemetry.detectors.peers import window_value


def errors(at: float, ratio: float) -> Reading:
    return Reading(at=at, status="ok", value=ratio, events=round(ratio * 100), trials=100)


def first_fail(rule: FlaggerRule | ArgoRule, ratio_at: dict[int, float], seconds: int) -> float:
    for second in range(1, seconds + 1):
        reading = errors(second, ratio_at.get(second // 60, 0.0))
        if rule.update(reading).verdict == "fail":
            return float(second)
    return -1.0


def test_flagger_rolls_back_threshold_intervals_after_the_first_failed_check() -> None:
    bad_from_start = dict.fromkeys(range(20), 0.1)
    rule = FlaggerRule(max_value=0.05, interval=60.0, threshold=5, start=0.0)
    # checks fail at 60, 120, 180, 240, 300; the tick at 360 sees 5 failures and rolls back
    assert first_fail(rule, bad_from_start, 1200) == 360.0
    assert rule.failed == 5


def test_flagger_counts_failed_checks_that_are_not_consecutive() -> None:
    # minutes 0, 2, 4, 6, 8 are bad (checked at 60, 180, 300, 420, 540), the others fine
    flapping = {minute: (0.1 if minute % 2 == 0 else 0.0) for minute in range(20)}
    rule = FlaggerRule(max_value=0.05, start=0.0)
    assert first_fail(rule, flapping, 1200) == 600.0


def test_argo_fails_at_the_first_failed_measurement_with_failure_limit_zero() -> None:
    late = {minute: 0.1 for minute in range(3, 20)}
    assert first_fail(ArgoRule(max_value=0.05, start=0.0), late, 1200) == 240.0
    assert first_fail(ArgoRule(max_value=0.05, failure_limit=1, start=0.0), late, 1200) == 300.0


def test_healthy_traffic_never_fails_and_marginal_shows_failed_checks() -> None:
    assert first_fail(FlaggerRule(max_value=0.05, start=0.0), {}, 1200) == -1.0
    rule = FlaggerRule(max_value=0.05, start=0.0)
    for second in range(1, 61):
        decision = rule.update(errors(second, 0.1))
    assert decision.verdict == "marginal"
    assert "1 of 1 checks failed" in decision.summary


def test_argo_errors_on_missing_data_and_gives_up_after_the_limit() -> None:
    rule = ArgoRule(max_value=0.05, interval=10.0, consecutive_error_limit=4, start=0.0)
    verdict = ""
    for second in range(1, 61):
        verdict = rule.update(Reading(at=second, status="no_data")).verdict
        if verdict == "fail":
            break
    assert (verdict, second) == ("fail", 50)  # the fifth error in a row


def test_window_value_is_what_a_range_query_would_return() -> None:
    counted = [errors(1, 0.1), Reading(at=2, status="ok", value=0.0, events=0, trials=300)]
    assert window_value(counted, None) == pytest.approx(10 / 400)
    latencies = [Reading(at=1, status="ok", value=1.0, samples=tuple(range(101)))]
    assert window_value(latencies, 0.99) == pytest.approx(99.0)
    values = [Reading(at=1, status="ok", value=1.0), Reading(at=2, status="ok", value=3.0)]
    assert window_value(values, None) == 2.0
    assert window_value([Reading(at=1, status="timeout")], None) is None
