"""``sequential``: an anytime-valid test that a rate got worse, checked at every reading.

The question: is the share of bad events (errors among requests, or requests slower than
the baseline's p99) now above ``p_null = baseline_rate * (1 + tolerance)``? Peeking at an
ordinary test every second would raise false alarms sooner or later; this one is built to
be peeked at.

The math, in plain words:

* **Evidence as a likelihood ratio.** After ``n`` requests with ``k`` errors, compare how
  likely those counts are if the true rate were some ``p`` above ``p_null``, against how
  likely they are at ``p_null``. We do not know ``p``, so we average over a spread of
  candidate rates (a Beta(1, b) mixture restricted to ``p > p_null``, centred near
  ``3 * p_null``). That average has a closed form with Beta functions::

      LR = B(1 + k, b + n - k) · P(Beta(1 + k, b + n - k) > p_null)
           / (B(1, b) · P(Beta(1, b) > p_null))
           / (p_null^k · (1 - p_null)^(n - k))

* **Why peeking is safe.** While the true rate is at most ``p_null`` the expected LR after
  every new request is at most its current value (a non-negative supermartingale that
  starts at 1). Ville's inequality then says the chance that it *ever* reaches ``1/alpha``
  is at most ``alpha``, however often and however long we look. So "fail when
  LR ≥ 1/alpha" has a false-alarm probability of at most ``alpha`` over the whole watch.

* **Late regressions.** Evidence that the rate was fine piles up too, and a test started
  at the deploy would need a while to climb out of it if things go wrong an hour later.
  So a fresh test starts every ``restart_every`` seconds; the j-th may only fail at the
  stricter level ``alpha / (j (j + 1))``. Those shares add up to ``alpha`` (1/2 + 1/6 +
  1/12 + … = 1), so the whole family still raises a false alarm with probability at most
  ``alpha``, while a regression is judged mostly on data from after it began.

* **Latency** uses the same machinery on exceedances: a request is an "event" when it is
  slower than the baseline's ``quantile`` (say p99), which a healthy version does with
  probability ``1 - quantile`` (1%).

``marginal`` means some test has at least the square root of its required evidence (half
way on a log scale). A measured baseline is itself noisy: :meth:`Sequential.from_baseline`
and :meth:`Sequential.latency_from_baseline` spend half of ``alpha`` on an upper
confidence bound for it, so a baseline that happened to look good does not turn into
false alarms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from backout.telemetry.base import Reading
from backout.telemetry.detectors.base import Decision, Verdict, fmt, no_data

PRIOR_MEAN_FACTOR = 3.0  # the mixture leans towards rates ~3x p_null: fast on big jumps
DEFAULT_RESTART_S = 10.0
LOG_ODDS_FLOOR = -745.0  # exp() of anything lower is 0.0 in double precision


def rate_upper_bound(events: int, trials: int, confidence: float) -> float:
    """Clopper-Pearson upper bound: the true rate is below it with ``confidence``."""
    if trials <= 0:
        raise ValueError("a baseline rate needs at least one trial")
    if events >= trials:
        return 1.0
    return float(stats.beta.ppf(confidence, events + 1, trials - events))


def quantile_upper_bound(samples: Sequence[float], quantile: float, confidence: float) -> float:
    """A distribution-free upper bound for a quantile: the order statistic that the true
    ``quantile`` lies below with ``confidence`` (binomial counting, no shape assumed)."""
    ordered = np.sort(np.asarray(samples, dtype=float))
    rank = int(stats.binom.ppf(confidence, len(ordered), quantile))  # 0-based index
    if rank >= len(ordered):
        raise ValueError(
            f"{len(ordered)} baseline samples are too few to bound their "
            f"{quantile:.3g} quantile with {confidence:.3g} confidence"
        )
    return float(ordered[rank])


class Sequential:
    """Mixture sequential probability ratio test on counts (see the module docstring).

    ``baseline_rate`` is the healthy share of events (0.01 for 1% errors). Readings give
    ``events``/``trials``; with ``exceeds`` set, their ``samples`` are counted instead
    (samples above ``exceeds`` are events).
    """

    def __init__(
        self,
        baseline_rate: float,
        *,
        tolerance: float = 0.2,
        alpha: float = 0.01,
        exceeds: float | None = None,
        restart_every: float = DEFAULT_RESTART_S,
        signal: str = "error ratio",
    ) -> None:
        self.p_null = baseline_rate * (1 + tolerance)
        if not 0 < self.p_null < 1:
            raise ValueError(
                f"baseline_rate * (1 + tolerance) = {self.p_null:.4g} must be between 0 and 1"
            )
        if not 0 < alpha < 1 or restart_every <= 0:
            raise ValueError("alpha must be in (0, 1) and restart_every positive")
        self.baseline_rate, self.tolerance, self.alpha = baseline_rate, tolerance, alpha
        self.exceeds, self.restart_every, self.signal = exceeds, restart_every, signal
        mean = min(0.5, PRIOR_MEAN_FACTOR * self.p_null)
        self.prior_b = (1 - mean) / mean  # Beta(1, b) has mean 1 / (1 + b)
        self.log_prior_mass = special.betaln(1.0, self.prior_b) + math.log(
            special.betaincc(1.0, self.prior_b, self.p_null)
        )
        self.starts = np.zeros(0)
        self.events = np.zeros(0)
        self.trials = np.zeros(0)
        self.log_thresholds = np.zeros(0)

    @classmethod
    def from_baseline(
        cls, events: int, trials: int, *, alpha: float = 0.01, **options: Any
    ) -> Sequential:
        """Baseline rate measured at snapshot time: its upper bound at 1 - alpha/2, then
        a test at alpha/2, so the false-alarm chance of both together stays ≤ alpha."""
        bound = rate_upper_bound(events, trials, 1 - alpha / 2)
        return cls(bound, alpha=alpha / 2, **options)

    @classmethod
    def latency(
        cls, baseline_value: float, *, quantile: float = 0.99, **options: Any
    ) -> Sequential:
        """Slower than ``baseline_value`` (the baseline's ``quantile``) counts as an event."""
        options.setdefault("signal", f"share of samples above {fmt(baseline_value)}")
        return cls(1 - quantile, exceeds=baseline_value, **options)

    @classmethod
    def latency_from_baseline(
        cls,
        samples: Sequence[float],
        *,
        quantile: float = 0.99,
        alpha: float = 0.01,
        **options: Any,
    ) -> Sequential:
        """Like :meth:`latency`, with the cutoff an upper bound of the baseline samples'
        quantile at 1 - alpha/2 and the test at alpha/2."""
        cutoff = quantile_upper_bound(samples, quantile, 1 - alpha / 2)
        return cls.latency(cutoff, quantile=quantile, alpha=alpha / 2, **options)

    def update(self, reading: Reading) -> Decision:
        counts = self._counts(reading)
        if counts is None:
            return no_data(reading, self.signal, "the evidence so far is kept")
        self._maybe_start(reading.at)
        events, trials = counts
        self.events += events
        self.trials += trials
        return self._decide(reading)

    def _counts(self, reading: Reading) -> tuple[int, int] | None:
        if not reading.ok:
            return None
        if self.exceeds is not None:
            if not reading.samples:
                return None
            cutoff = self.exceeds
            return sum(sample > cutoff for sample in reading.samples), len(reading.samples)
        if reading.events is None or not reading.trials:
            return None
        return min(reading.events, reading.trials), reading.trials

    def _maybe_start(self, at: float) -> None:
        if self.starts.size and at - self.starts[-1] < self.restart_every:
            return
        j = self.starts.size + 1
        self.starts = np.append(self.starts, at)
        self.events = np.append(self.events, 0.0)
        self.trials = np.append(self.trials, 0.0)
        self.log_thresholds = np.append(self.log_thresholds, -math.log(self.alpha / (j * (j + 1))))

    def log_likelihood_ratios(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """ln LR of every running test (see the module docstring for the formula)."""
        every = np.ones(self.starts.size, dtype=bool)
        result: np.ndarray[Any, np.dtype[np.float64]] = self._log_bounds() + self._log_tails(every)
        return result

    def _log_bounds(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """ln LR without its tail term ln P(Beta > p_null) <= 0: an upper bound, and cheap."""
        k, n, b, p = self.events, self.trials, self.prior_b, self.p_null
        result: np.ndarray[Any, np.dtype[np.float64]] = (
            special.betaln(1.0 + k, b + n - k)
            - self.log_prior_mass
            - (k * math.log(p) + (n - k) * math.log1p(-p))
        )
        return result

    def _log_tails(self, which: np.ndarray[Any, np.dtype[np.bool_]]) -> Any:
        k, n = self.events[which], self.trials[which]
        with np.errstate(divide="ignore"):  # a vanishing tail is LR = 0, i.e. ln LR = -inf
            return np.log(special.betaincc(1.0 + k, self.prior_b + n - k, self.p_null))

    def _decide(self, reading: Reading) -> Decision:
        # The incomplete Beta function is most of the cost, so it is computed only for
        # tests whose upper bound reaches half their bar: the others pass whatever it is.
        log_lr = self._log_bounds()
        near = log_lr >= self.log_thresholds / 2
        log_lr[near] += self._log_tails(near)
        # The test closest to its bar, on a log scale, speaks for the family.
        best = int(np.argmax(log_lr - self.log_thresholds))
        if not near[best]:
            log_lr[best] += self._log_tails(np.arange(self.starts.size) == best)[0]
        # A tail too small for a float is odds of 0; keep the journal's JSON finite.
        statistic = max(float(log_lr[best]), LOG_ODDS_FLOOR)
        bar = float(self.log_thresholds[best])
        verdict: Verdict = (
            "fail" if statistic >= bar else "marginal" if statistic >= bar / 2 else "pass"
        )
        k, n = int(self.events[best]), int(self.trials[best])
        evidence = {
            "p_null": self.p_null,
            "baseline_rate": self.baseline_rate,
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "exceeds": self.exceeds,
            "tests_running": int(self.starts.size),
            "test_started_at": float(self.starts[best]),
            "events": k,
            "trials": n,
            "observed_rate": k / n if n else None,
            "log_lr": statistic,
            "log_threshold": bar,
            "alpha_share": math.exp(-bar),
            "at": reading.at,
            "source": reading.detail,
        }
        return Decision(verdict, statistic, bar, evidence, self._summary(verdict, evidence))

    def _summary(self, verdict: Verdict, evidence: dict[str, Any]) -> str:
        k, n = evidence["events"], evidence["trials"]
        rate = f"{fmt(k / n)}" if n else "n/a"
        odds = _odds(evidence["log_lr"])
        needed = _odds(evidence["log_threshold"])
        window = max(0.0, evidence["at"] - evidence["test_started_at"])
        head = f"{self.signal}: {k} of {n} ({rate}) in the last {window:.1f} s"
        if verdict == "fail":
            return (
                f"{head}; the odds that the rate is above {fmt(self.p_null)} are {odds} to 1, "
                f"past the {needed} to 1 needed (false-alarm chance ≤ {self.alpha:g})"
            )
        return (
            f"{head}; odds of a rate above {fmt(self.p_null)} are {odds} to 1, "
            f"{needed} to 1 would fail"
        )


def _odds(log_value: float) -> str:
    if log_value <= LOG_ODDS_FLOOR:
        return "0"
    return f"{math.exp(min(log_value, 700.0)):.3g}"
