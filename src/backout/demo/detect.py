"""The demo's trigger: error share over a short sliding window of a service's own counters.

Deliberately minimal (a later trigger system replaces it): pure functions over samples of
two Prometheus counters, so the decision can be tested without a service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

REQUESTS_METRIC = "demo_http_requests_total"


@dataclass(frozen=True)
class Sample:
    """One scrape: when (monotonic seconds) and the cumulative counter values."""

    at: float
    requests: float
    errors: float


@dataclass(frozen=True)
class Rule:
    """Breach when more than ``threshold`` of the requests in the window failed."""

    threshold: float = 0.10
    window_s: float = 2.0
    min_requests: int = 20  # too few requests say nothing about a rate


@dataclass(frozen=True)
class Reading:
    """What happened in the window: requests served and how many of them failed."""

    requests: float
    errors: float

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def parse_counts(text: str, metric: str = REQUESTS_METRIC) -> tuple[float, float]:
    """(all requests, 5xx responses) summed over ``metric``'s ``code`` label."""
    requests = errors = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != metric:
                continue
            requests += sample.value
            if str(sample.labels.get("code", "")).startswith("5"):
                errors += sample.value
    return requests, errors


def increase(before: float, after: float) -> float:
    """A counter only goes up; a lower value means the process restarted from zero."""
    return after - before if after >= before else after


def read_window(samples: Sequence[Sample], window_s: float) -> Reading:
    """Counter increases over the last ``window_s`` seconds (from the sample at its start)."""
    if len(samples) < 2:
        return Reading(0.0, 0.0)
    start_at = samples[-1].at - window_s
    first = max((i for i, s in enumerate(samples) if s.at <= start_at), default=0)
    pairs = list(zip(samples[first:], samples[first + 1 :], strict=False))
    return Reading(
        sum(increase(a.requests, b.requests) for a, b in pairs),
        sum(increase(a.errors, b.errors) for a, b in pairs),
    )


def breached(reading: Reading, rule: Rule) -> bool:
    return reading.requests >= rule.min_requests and reading.error_share > rule.threshold


def evaluate(samples: Sequence[Sample], rule: Rule) -> tuple[Reading, bool]:
    """The reading over the rule's window, and whether it breaches the rule."""
    reading = read_window(samples, rule.window_s)
    return reading, breached(reading, rule)
