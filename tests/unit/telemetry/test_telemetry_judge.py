"""The Mann-Whitney judge: pass, marginal and fail on crafted samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backout.telemetry import Reading
from backout.telemetry.detectors import MannWhitneyJudge


def batch(at: float, samples: np.ndarray) -> Reading:
    return Reading(at=at, status="ok", value=float(samples.mean()), samples=tuple(samples))


def judge_on(baseline: np.ndarray, **options: Any) -> MannWhitneyJudge:
    judge = MannWhitneyJudge(**options)
    judge.observe_baseline(batch(0.0, baseline))
    return judge


RNG = np.random.default_rng(42)
BASE = RNG.lognormal(np.log(0.1), 0.5, 400)
SAME = RNG.lognormal(np.log(0.1), 0.5, 400)


def test_same_distribution_with_many_samples_passes() -> None:
    decision = judge_on(BASE, tolerance=0.1).update(batch(1.0, SAME))
    assert decision.verdict == "pass"
    assert decision.evidence["p_within_band"] < 0.05
    assert "within 10% of the baseline" in decision.summary


def test_clearly_slower_canary_fails() -> None:
    slower = SAME * 1.5
    decision = judge_on(BASE, tolerance=0.1).update(batch(1.0, slower))
    assert decision.verdict == "fail"
    assert decision.statistic is not None
    assert decision.statistic < 0.05
    assert decision.evidence["mean_ratio"] == pytest.approx(1.5 * SAME.mean() / BASE.mean())
    assert "worse than the baseline by more than 10%" in decision.summary


def test_at_the_band_edge_it_cannot_tell_marginal() -> None:
    # the canary is exactly the baseline moved to the edge of the band: no evidence either way
    edge = BASE[:60] * 1.1
    decision = judge_on(BASE[:60], tolerance=0.1).update(batch(1.0, edge))
    assert decision.verdict == "marginal"
    assert "cannot tell yet" in decision.summary


def test_slightly_slower_within_tolerance_is_not_a_fail() -> None:
    within = SAME * 1.05
    decision = judge_on(BASE, tolerance=0.2).update(batch(1.0, within))
    assert decision.verdict == "pass"


def test_lower_is_worse_direction() -> None:
    throughput = SAME * 0.5
    judge = judge_on(BASE, tolerance=0.1, direction="down")
    assert judge.update(batch(1.0, throughput)).verdict == "fail"
    judge = judge_on(BASE, tolerance=0.1, direction="down")
    assert judge.update(batch(1.0, SAME * 2)).verdict == "pass"


def test_warming_up_until_min_samples_on_both_sides() -> None:
    judge = judge_on(BASE[:30], min_samples=50)
    decision = judge.update(batch(1.0, SAME))
    assert decision.verdict == "warming_up"
    assert "50 of each are needed" in decision.summary
    judge.observe_baseline(batch(2.0, BASE[30:60]))
    assert judge.update(batch(2.0, SAME[:1])).verdict != "warming_up"


def test_values_without_samples_count_one_each_and_identical_zeros_pass() -> None:
    judge = MannWhitneyJudge(min_samples=3, signal="canary error ratio")
    for at in range(3):
        judge.observe_baseline(Reading(at=at, status="ok", value=0.0))
        decision = judge.update(Reading(at=at, status="ok", value=0.0))
    assert decision.verdict == "pass"
    assert "all 6 samples are equal" in decision.summary


def test_no_data_and_every() -> None:
    judge = judge_on(BASE, every=60.0)
    assert judge.update(Reading(at=1.0, status="error", detail="boom")).verdict == "no_data"
    first = judge.update(batch(2.0, SAME))
    assert judge.update(batch(30.0, SAME * 3)) is first  # not judged again before 60 s
    assert judge.update(batch(62.0, SAME * 3)).verdict == "fail"


def test_window_forgets_old_samples_but_not_fixed_baseline() -> None:
    judge = MannWhitneyJudge(window=10.0, baseline=BASE.tolist(), min_samples=50)
    judge.update(batch(0.0, SAME * 3))  # a bad minute, long ago
    decision = judge.update(batch(20.0, SAME))
    assert decision.evidence["canary_samples"] == 400
    assert decision.evidence["baseline_samples"] == 400
    assert decision.verdict == "pass"
