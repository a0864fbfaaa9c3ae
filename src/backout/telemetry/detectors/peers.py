"""What Flagger and Argo Rollouts would decide on the same readings (for ``bench/``).

Both tools measure once per ``interval``, over the last ``interval`` of traffic (their
documented examples query ``rate(…[1m])`` or ``[5m]``), and compare the result with a
fixed limit. The window value here is what such a query returns: summed events over
summed trials when the readings carry counts, a ``quantile`` of the pooled samples when
asked (``histogram_quantile``), otherwise the mean of the values.

* **Flagger** (``analysis.interval``, default 60 s; ``analysis.threshold``: the number of
  failed checks before rollback). Each tick its scheduler first rolls back if the failed
  checks already reached ``threshold``, then runs the checks and counts a failure. The
  count is not reset by a passing check, and a query with no data counts as failed. So a
  steady regression is rolled back ``threshold`` intervals after the first failed check.
* **Argo Rollouts** (AnalysisTemplate ``interval``, ``failureLimit``, default 0;
  ``consecutiveErrorLimit``, default 4). Each measurement fails when the value is over the
  limit; the analysis, and with it the rollout, fails as soon as the failed measurements
  exceed ``failureLimit`` — with 0, at the first one. A measurement without data is an
  error; more than ``consecutiveErrorLimit`` errors in a row fail the analysis too.

Argo takes a measurement right at the start of the analysis as well; over a window with
no canary traffic yet it says nothing, so it is left out here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from backout.telemetry.base import Reading
from backout.telemetry.detectors.base import Decision, Verdict, fmt


def window_value(readings: list[Reading], quantile: float | None) -> float | None:
    """What a range query over these readings would return (see the module docstring)."""
    good = [reading for reading in readings if reading.ok]
    if quantile is not None:
        samples = [sample for reading in good for sample in reading.samples]
        return float(np.quantile(samples, quantile)) if samples else None
    if good and all(reading.trials is not None for reading in good):
        trials = sum(reading.trials or 0 for reading in good)
        return sum(reading.events or 0 for reading in good) / trials if trials else None
    values = [reading.value for reading in good if reading.value is not None]
    return sum(values) / len(values) if values else None


class PeriodicRule(ABC):
    """Checks once per ``interval`` from ``start`` (default: the first reading's time)."""

    def __init__(
        self,
        *,
        max_value: float,
        interval: float,
        quantile: float | None,
        start: float | None,
        signal: str,
    ) -> None:
        self.max_value, self.interval, self.quantile = max_value, interval, quantile
        self.signal = signal
        self.next_tick = None if start is None else start + interval
        self.window: list[Reading] = []
        self.failed = 0
        self.checks = 0
        self.failed_at: float | None = None
        self.last_value: float | None = None

    def update(self, reading: Reading) -> Decision:
        if self.next_tick is None:
            self.next_tick = reading.at + self.interval
        self.window.append(reading)
        while self.failed_at is None and reading.at >= self.next_tick:
            tick = self.next_tick
            self.window = [r for r in self.window if r.at > tick - self.interval]
            self.last_value = window_value([r for r in self.window if r.at <= tick], self.quantile)
            self.checks += 1
            self.tick(tick, self.last_value)
            self.next_tick = tick + self.interval
        return self.decision(reading)

    @abstractmethod
    def tick(self, at: float, value: float | None) -> None:
        """One scheduled check; set ``failed_at`` when the rule aborts the rollout."""

    def decision(self, reading: Reading) -> Decision:
        verdict: Verdict = (
            "fail" if self.failed_at is not None else "marginal" if self.failed else "pass"
        )
        value = "no data" if self.last_value is None else fmt(self.last_value)
        summary = (
            f"{type(self).__name__} on {self.signal}: last check {value} "
            f"against {fmt(self.max_value)}; "
            f"{self.failed} of {self.checks} checks failed"
            + (f"; aborted at t={self.failed_at:.0f}" if self.failed_at is not None else "")
        )
        evidence = {
            "checks": self.checks,
            "failed_checks": self.failed,
            "last_value": self.last_value,
            "max_value": self.max_value,
            "interval_s": self.interval,
            "aborted_at": self.failed_at,
            "at": reading.at,
        }
        return Decision(verdict, self.last_value, self.max_value, evidence, summary)


class FlaggerRule(PeriodicRule):
    def __init__(
        self,
        *,
        max_value: float,
        interval: float = 60.0,
        threshold: int = 5,
        quantile: float | None = None,
        start: float | None = None,
        signal: str = "value",
    ) -> None:
        super().__init__(
            max_value=max_value, interval=interval, quantile=quantile, start=start, signal=signal
        )
        self.threshold = threshold

    def tick(self, at: float, value: float | None) -> None:
        if self.failed >= self.threshold:
            self.failed_at = at
        elif value is None or value > self.max_value:
            self.failed += 1


class ArgoRule(PeriodicRule):
    def __init__(
        self,
        *,
        max_value: float,
        interval: float = 60.0,
        failure_limit: int = 0,
        consecutive_error_limit: int = 4,
        quantile: float | None = None,
        start: float | None = None,
        signal: str = "value",
    ) -> None:
        super().__init__(
            max_value=max_value, interval=interval, quantile=quantile, start=start, signal=signal
        )
        self.failure_limit = failure_limit
        self.consecutive_error_limit = consecutive_error_limit
        self.errors_in_a_row = 0

    def tick(self, at: float, value: float | None) -> None:
        if value is None:
            self.errors_in_a_row += 1
            if self.errors_in_a_row > self.consecutive_error_limit:
                self.failed_at = at
            return
        self.errors_in_a_row = 0
        if value > self.max_value:
            self.failed += 1
            if self.failed > self.failure_limit:
                self.failed_at = at
