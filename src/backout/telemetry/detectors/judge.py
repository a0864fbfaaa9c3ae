"""``judge``: canary against baseline samples, Mann-Whitney U with a tolerance band.

Kayenta's judge asks, metric by metric, whether the canary's samples are higher or lower
than the baseline's with a Mann-Whitney U test, and its scorecard turns the answers into
pass / marginal / fail. This judge gives the three verdicts for one metric directly, and
puts the tolerance into the test instead of next to it:

* The band: the canary may be up to ``tolerance`` worse than the baseline. Every baseline
  sample ``x`` is moved to the edge of the band, ``x + |x| * tolerance`` (higher is worse)
  or ``x - |x| * tolerance`` (lower is worse).
* **fail**: a one-sided Mann-Whitney U test says the canary's samples tend to be worse than
  even those moved baseline samples (p < ``alpha``): worse beyond the tolerance, with
  confidence ``1 - alpha``.
* **pass**: the opposite one-sided test says they tend to be better than the band's edge
  (p < ``alpha``): within the tolerance, with the same confidence (a non-inferiority test).
* **marginal**: neither: too few or too noisy samples to tell. More samples settle it.
* **warming_up**: fewer than ``min_samples`` on either side.

Mann-Whitney compares ranks, not means, so one huge outlier cannot decide alone and no
distribution shape is assumed; ``scipy.stats.mannwhitneyu`` computes it (exact for small
samples without ties, normal approximation with tie correction otherwise). It assumes the
samples are independent: feed it raw observations (probe latencies) or one value per
interval, and judge every ``every`` seconds rather than at each reading, since each look
is a fresh chance of a false alarm (unlike ``sequential``). The evidence also reports
Kayenta's effect size, the ratio of the means.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
from scipy.stats import mannwhitneyu

from backout.telemetry.base import Reading
from backout.telemetry.detectors.base import Decision, Verdict, fmt, no_data

MAX_SAMPLES = 5000  # per side: the most recent; keeps each test in milliseconds


class Window:
    """The samples of one side, by the time they arrived, trimmed to ``window`` seconds
    and to the most recent ``MAX_SAMPLES``; ``fixed`` samples (a baseline recorded at
    snapshot time) never age out."""

    def __init__(self, window: float | None, fixed: Iterable[float] = ()) -> None:
        self.window = window
        self.fixed = np.asarray(list(fixed), dtype=float)
        self.batches: deque[tuple[float, np.ndarray[Any, np.dtype[np.float64]]]] = deque()
        self.count = 0

    def add(self, at: float, samples: Iterable[float]) -> None:
        batch = np.asarray(list(samples), dtype=float)
        self.batches.append((at, batch))
        self.count += batch.size
        while self.count - self.batches[0][1].size >= MAX_SAMPLES:
            self.count -= self.batches.popleft()[1].size

    def values(self, now: float) -> np.ndarray[Any, np.dtype[np.float64]]:
        if self.window is not None:
            while self.batches and self.batches[0][0] <= now - self.window:
                self.count -= self.batches.popleft()[1].size
        return np.concatenate([self.fixed, *(batch for _, batch in self.batches)])


def samples_of(reading: Reading) -> tuple[float, ...]:
    """Raw samples when the source gives them, else the reading's value as one sample."""
    if not reading.ok:
        return ()
    if reading.samples:
        return reading.samples
    return (reading.value,) if reading.value is not None else ()


class MannWhitneyJudge:
    """Feed the baseline with :meth:`observe_baseline` and the canary with :meth:`update`
    (or pass fixed ``baseline`` samples); ``update`` returns the verdict."""

    def __init__(
        self,
        *,
        tolerance: float = 0.1,
        alpha: float = 0.05,
        min_samples: int = 50,
        direction: Literal["up", "down"] = "up",
        window: float | None = None,
        every: float = 0.0,
        baseline: Iterable[float] = (),
        signal: str = "canary",
    ) -> None:
        if tolerance < 0 or not 0 < alpha < 1 or min_samples < 1:
            raise ValueError("tolerance ≥ 0, 0 < alpha < 1 and min_samples ≥ 1 are required")
        self.tolerance, self.alpha, self.min_samples = tolerance, alpha, min_samples
        self.direction, self.every, self.signal = direction, every, signal
        self.baseline, self.canary = Window(window, baseline), Window(window)
        self.last: Decision | None = None
        self.last_at = float("-inf")

    def observe_baseline(self, reading: Reading) -> None:
        self.baseline.add(reading.at, samples_of(reading))

    def update(self, reading: Reading) -> Decision:
        samples = samples_of(reading)
        if not samples:
            return no_data(reading, self.signal, "the samples so far are kept")
        self.canary.add(reading.at, samples)
        if self.last is not None and reading.at - self.last_at < self.every:
            return self.last
        self.last_at = reading.at
        self.last = self.judge(
            self.baseline.values(reading.at), self.canary.values(reading.at), reading
        )
        return self.last

    def edge(self, baseline: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
        """The baseline moved to the worse edge of the tolerance band."""
        margin = np.abs(baseline) * self.tolerance
        return baseline + margin if self.direction == "up" else baseline - margin

    def judge(
        self,
        baseline: np.ndarray[Any, np.dtype[np.float64]],
        canary: np.ndarray[Any, np.dtype[np.float64]],
        reading: Reading,
    ) -> Decision:
        sizes = {"baseline_samples": int(baseline.size), "canary_samples": int(canary.size)}
        if min(baseline.size, canary.size) < self.min_samples:
            summary = (
                f"{self.signal}: {canary.size} canary and {baseline.size} baseline samples, "
                f"{self.min_samples} of each are needed"
            )
            return Decision("warming_up", None, None, {**sizes, "at": reading.at}, summary)
        if np.ptp(np.concatenate([baseline, canary])) == 0:
            summary = f"{self.signal}: all {canary.size + baseline.size} samples are equal"
            return Decision("pass", None, self.alpha, {**sizes, "at": reading.at}, summary)
        worse, better = ("greater", "less") if self.direction == "up" else ("less", "greater")
        edge = self.edge(baseline)
        p_worse = _p_value(canary, edge, worse)
        p_within = _p_value(canary, edge, better)
        verdict: Verdict = (
            "fail" if p_worse < self.alpha else "pass" if p_within < self.alpha else "marginal"
        )
        evidence = {
            **sizes,
            **_describe(baseline, canary),
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "direction": self.direction,
            "p_worse_than_band": p_worse,
            "p_within_band": p_within,
            "at": reading.at,
        }
        return Decision(verdict, p_worse, self.alpha, evidence, self._summary(verdict, evidence))

    def _summary(self, verdict: Verdict, evidence: dict[str, Any]) -> str:
        medians = (
            f"median {fmt(evidence['canary_median'])} vs {fmt(evidence['baseline_median'])} "
            f"({evidence['canary_samples']} vs {evidence['baseline_samples']} samples)"
        )
        band = f"{self.tolerance:.0%} of the baseline"
        if verdict == "fail":
            return (
                f"{self.signal} is worse than the baseline by more than {band}: {medians}, "
                f"p = {evidence['p_worse_than_band']:.2g} < {self.alpha:g}"
            )
        if verdict == "pass":
            return (
                f"{self.signal} is within {band}: {medians}, "
                f"p = {evidence['p_within_band']:.2g} < {self.alpha:g}"
            )
        return (
            f"{self.signal}: cannot tell yet whether it is within {band}: {medians}, "
            f"p(worse) = {evidence['p_worse_than_band']:.2g}, "
            f"p(within) = {evidence['p_within_band']:.2g}"
        )


def _p_value(
    canary: np.ndarray[Any, np.dtype[np.float64]],
    reference: np.ndarray[Any, np.dtype[np.float64]],
    alternative: str,
) -> float:
    return float(mannwhitneyu(canary, reference, alternative=alternative).pvalue)


def _describe(
    baseline: np.ndarray[Any, np.dtype[np.float64]], canary: np.ndarray[Any, np.dtype[np.float64]]
) -> dict[str, Any]:
    base_mean, canary_mean = float(baseline.mean()), float(canary.mean())
    return {
        "baseline_median": statistics.median(baseline.tolist()),
        "canary_median": statistics.median(canary.tolist()),
        "baseline_mean": base_mean,
        "canary_mean": canary_mean,
        "mean_ratio": canary_mean / base_mean if base_mean else None,
    }
