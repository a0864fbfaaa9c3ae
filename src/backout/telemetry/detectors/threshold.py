"""``threshold``: a value above (or below) a limit, held for ``for`` seconds.

Plain words: every reading is compared with the limit; the trigger fails once the value
has stayed on the wrong side for at least ``for`` seconds, measured from the first
breaching reading, as Prometheus' ``for:`` does. A single reading back within the limit,
or a reading without data, starts the clock over (a gap is not evidence of a breach).
While a breach is younger than ``for`` the verdict is ``marginal``.
"""

from __future__ import annotations

from typing import Literal

from backout.telemetry.base import Reading
from backout.telemetry.detectors.base import Decision, Verdict, fmt, no_data


class Threshold:
    def __init__(
        self,
        *,
        above: float | None = None,
        below: float | None = None,
        for_s: float = 0.0,
        signal: str = "value",
        note: str = "",
    ) -> None:
        if for_s < 0:
            raise ValueError("for must not be negative")
        self.side: Literal["above", "below"]
        if above is not None and below is None:
            self.side, self.limit = "above", above
        elif below is not None and above is None:
            self.side, self.limit = "below", below
        else:
            raise ValueError("a threshold needs exactly one of above or below")
        self.for_s = for_s
        self.signal = signal
        self.note = note  # how the limit came about, e.g. "baseline 0.01 + 50%"
        self.breach_since: float | None = None
        self.breach_samples = 0

    def breaches(self, value: float) -> bool:
        return value > self.limit if self.side == "above" else value < self.limit

    def update(self, reading: Reading) -> Decision:
        if not reading.ok or reading.value is None:
            self.breach_since, self.breach_samples = None, 0
            return no_data(reading, self.signal, "the breach timer starts over")
        value = reading.value
        if not self.breaches(value):
            self.breach_since, self.breach_samples = None, 0
            return self._decide("pass", reading, 0.0)
        if self.breach_since is None:
            self.breach_since = reading.at
        self.breach_samples += 1
        held = reading.at - self.breach_since
        return self._decide("fail" if held >= self.for_s else "marginal", reading, held)

    def _decide(self, verdict: Verdict, reading: Reading, held: float) -> Decision:
        value = reading.value or 0.0
        where = f"{self.signal} {fmt(value)}"
        limit = f"{fmt(self.limit)} ({self.note})" if self.note else fmt(self.limit)
        if verdict == "pass":
            summary = f"{where} is not {self.side} {limit}"
        elif verdict == "fail":
            summary = (
                f"{where} has been {self.side} {limit} for {held:.1f} s "
                f"({_samples(self.breach_samples)})"
            )
        else:
            summary = (
                f"{where} is {self.side} {limit} since {held:.1f} s "
                f"({_samples(self.breach_samples)}); it fails once that lasts {self.for_s:g} s"
            )
        return Decision(
            verdict=verdict,
            statistic=value,
            threshold=self.limit,
            evidence={
                "value": value,
                self.side: self.limit,
                "for_s": self.for_s,
                "breach_started_at": self.breach_since,
                "breached_for_s": held,
                "samples_in_breach": self.breach_samples,
                "at": reading.at,
                "source": reading.detail,
            },
            summary=summary,
        )


def _samples(count: int) -> str:
    return f"{count} sample" if count == 1 else f"{count} samples"
