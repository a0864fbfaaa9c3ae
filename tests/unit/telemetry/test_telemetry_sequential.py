"""The mixture SPRT: its formula, its detection speed and its false-alarm bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from backout.telemetry import Reading
from backout.telemetry.detectors import Sequential, quantile_upper_bound, rate_upper_bound

RATE = 50  # requests per second


def counts(at: float, events: int, trials: int) -> Reading:
    return Reading(
        at=at, status="ok", value=events / trials, events=events, trials=trials, detail="5xx/all"
    )


def first_fail(test: Sequential, rng: np.random.Generator, rates: list[float]) -> float | None:
    """Feed one reading a second at the given error rates; when did it fail?"""
    for second, rate in enumerate(rates, start=1):
        trials = int(rng.poisson(RATE))
        if test.update(counts(second, int(rng.binomial(trials, rate)), trials)).verdict == "fail":
            return float(second)
    return None


def test_likelihood_ratio_matches_numerical_integration() -> None:
    test = Sequential(0.01, tolerance=0.2, restart_every=1e9)
    test.update(counts(1.0, 7, 120))
    p0, b = test.p_null, test.prior_b
    likelihood = lambda p: p**7 * (1 - p) ** 113 * stats.beta.pdf(p, 1, b)  # noqa: E731
    area = integrate.quad(likelihood, p0, 1, points=[7 / 120], epsabs=0, epsrel=1e-12)[0]
    mixture = area / stats.beta.sf(p0, 1, b)
    expected = math.log(mixture) - (7 * math.log(p0) + 113 * math.log1p(-p0))
    assert test.log_likelihood_ratios()[0] == pytest.approx(expected, rel=1e-6)


def test_detects_one_to_five_percent_within_seconds() -> None:
    delays = []
    for seed in range(10):
        test = Sequential(0.01, tolerance=0.2, alpha=0.01)
        fired = first_fail(test, np.random.default_rng(seed), [0.05] * 60)
        assert fired is not None
        delays.append(fired)
    assert max(delays) <= 15
    assert sorted(delays)[5] <= 8  # median


def test_quiet_on_2000_seconds_of_healthy_traffic() -> None:
    test = Sequential(0.01, tolerance=0.2, alpha=0.01)
    assert first_fail(test, np.random.default_rng(2024), [0.01] * 2000) is None
    assert test.starts.size == 200  # a fresh test every 10 s, each with its share of alpha


def test_false_alarms_stay_under_alpha_even_at_the_edge_of_the_null() -> None:
    # The true rate sits exactly at p_null, the worst case the bound has to hold for.
    alarms = 0
    for seed in range(100):
        test = Sequential(0.01, tolerance=0.2, alpha=0.05)
        alarms += first_fail(test, np.random.default_rng(seed), [0.012] * 120) is not None
    assert alarms <= 5


def test_restarts_catch_a_late_regression_quickly() -> None:
    rates = [0.01] * 600 + [0.05] * 120
    with_restarts = first_fail(Sequential(0.01), np.random.default_rng(5), rates)
    without = first_fail(Sequential(0.01, restart_every=1e9), np.random.default_rng(5), rates)
    assert with_restarts is not None
    assert without is not None
    assert with_restarts - 600 <= 15
    assert without - 600 > 2 * (with_restarts - 600)


def test_alpha_shares_add_up_to_alpha() -> None:
    test = Sequential(0.01, alpha=0.01, restart_every=10.0)
    for second in range(0, 31):
        test.update(counts(float(second), 0, 50))
    assert test.starts.tolist() == [0.0, 10.0, 20.0, 30.0]
    shares = np.exp(-test.log_thresholds)
    assert shares == pytest.approx([0.01 / 2, 0.01 / 6, 0.01 / 12, 0.01 / 20])


def test_decision_explains_itself() -> None:
    test = Sequential(0.01, tolerance=0.2, alpha=0.01, signal="error ratio")
    for second in range(1, 6):
        decision = test.update(counts(float(second), 10, 50))
    assert decision.verdict == "fail"
    assert decision.evidence["events"] == 50
    assert decision.evidence["trials"] == 250
    assert decision.statistic is not None
    assert decision.threshold == pytest.approx(math.log(200))
    assert decision.statistic >= decision.threshold
    assert decision.summary.startswith("error ratio: 50 of 250 (0.2) in the last 4.0 s;")
    assert "false-alarm chance ≤ 0.01" in decision.summary


def test_marginal_before_fail_and_no_data_keeps_evidence() -> None:
    test = Sequential(0.01)
    verdicts = [test.update(counts(at, 3, 50)).verdict for at in (1.0, 2.0)]
    before = test.events.copy()
    gap = test.update(Reading(at=3.0, status="no_data", events=0, trials=0))
    assert gap.verdict == "no_data"
    assert np.array_equal(test.events, before)
    verdicts.append(test.update(counts(4.0, 3, 50)).verdict)
    assert verdicts == ["pass", "marginal", "fail"]


def test_latency_mode_counts_samples_above_the_cutoff() -> None:
    rng = np.random.default_rng(11)
    cutoff = math.exp(math.log(0.1) + 2.326 * 0.5)  # the true p99
    test = Sequential.latency(cutoff, quantile=0.99)
    assert test.p_null == pytest.approx(0.012)
    verdict = ""
    for second in range(1, 300):
        samples = rng.lognormal(math.log(0.1), 0.5, 50) * 1.5
        verdict = test.update(Reading(at=second, status="ok", samples=tuple(samples))).verdict
        if verdict == "fail":
            break
    assert verdict == "fail"
    assert second <= 30


def test_baseline_measured_at_snapshot_uses_upper_bounds_and_half_alpha() -> None:
    test = Sequential.from_baseline(30, 3000, tolerance=0.2, alpha=0.01)
    assert test.alpha == 0.005
    assert test.baseline_rate == pytest.approx(rate_upper_bound(30, 3000, 0.995))
    assert test.baseline_rate > 0.01
    samples = np.random.default_rng(3).lognormal(0, 0.5, 3000)
    latency = Sequential.latency_from_baseline(samples.tolist(), quantile=0.99, alpha=0.01)
    assert latency.exceeds is not None
    assert latency.exceeds > np.quantile(samples, 0.99)


def test_bounds() -> None:
    # Clopper-Pearson with no events: 1 - (1 - confidence)^(1/n)
    assert rate_upper_bound(0, 100, 0.95) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert rate_upper_bound(5, 5, 0.95) == 1.0
    values = list(range(1, 1001))
    assert 990 < quantile_upper_bound(values, 0.99, 0.99) <= 1000
    with pytest.raises(ValueError, match="too few"):
        quantile_upper_bound(values[:50], 0.99, 0.99)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Sequential(0.9, tolerance=0.2)
    with pytest.raises(ValueError, match="alpha"):
        Sequential(0.01, alpha=0)
