"""What the watches of one process report of each reading they evaluate: its evaluation lag
(from the moment it was due to the moment the triggers had it) and the triggers it reached.

:class:`Evaluations` keeps them per deployment as Prometheus metrics, served by ``backout
watch --metrics`` and by ``backout server`` (for the watches its workers run):

- ``backout_watch_evaluation_lag_seconds{service}``, a histogram of each reading's lag;
- ``backout_trigger_evaluations_total{service,trigger}``, each trigger's evaluations.

``service`` is the service as runs and leases key it (``shop@staging`` in an environment).
:class:`LagRecorder` adds what a fleet's watch shows: the deployments it watches now, and
the lag pooled for the summary it prints at the end (p50, p99, max)."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KEPT = 200_000  # the pooled summary's most recent readings
Record = Callable[[float, tuple[str, ...]], None]  # (lag in seconds, the triggers evaluated)


@dataclass(frozen=True)
class LagSummary:
    readings: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "readings": self.readings,
            "p50_s": self.p50_s,
            "p99_s": self.p99_s,
            "max_s": self.max_s,
        }

    def text(self) -> str:
        if not self.readings or self.p50_s is None or self.p99_s is None:
            return "no readings evaluated"
        return (
            f"{self.readings} readings evaluated; lag p50 {self.p50_s * 1000:.0f} ms, "
            f"p99 {self.p99_s * 1000:.0f} ms, max {(self.max_s or 0) * 1000:.0f} ms"
        )


class Evaluations:
    """Thread-safe: every watch thread records into it. Its series are per deployment and
    trigger (never per run), so they stay as many as the plans' triggers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._histogram = Histogram(
            "backout_watch_evaluation_lag_seconds",
            "From a reading being due to the watch's detectors having it.",
            ["service"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._evaluations = Counter(
            "backout_trigger_evaluations",
            "Readings a trigger evaluated, by deployment and trigger.",
            ["service", "trigger"],
            registry=self.registry,
        )

    def for_service(self, service: str) -> Record:
        """What a watch of ``service`` calls after each reading it evaluated."""
        lag = self._histogram.labels(service=service)
        counters: dict[str, Any] = {}

        def record(seconds: float, triggers: tuple[str, ...]) -> None:
            lag.observe(seconds)
            for trigger in triggers:
                counter = counters.get(trigger)
                if counter is None:
                    counter = counters[trigger] = self._evaluations.labels(service, trigger)
                counter.inc()

        return record


class LagRecorder(Evaluations):
    """A fleet's watch: the evaluations, the deployments watched now, and every reading's
    lag pooled for the summary."""

    def __init__(self) -> None:
        super().__init__()
        self.watched = Gauge(
            "backout_watch_deployments",
            "Deployments this process is watching now.",
            registry=self.registry,
        )
        self._pooled: deque[float] = deque(maxlen=KEPT)
        self._count = 0
        self._lock = threading.Lock()

    def for_service(self, service: str) -> Record:
        evaluated = super().for_service(service)

        def record(seconds: float, triggers: tuple[str, ...]) -> None:
            evaluated(seconds, triggers)
            with self._lock:
                self._pooled.append(seconds)
                self._count += 1

        return record

    def summary(self) -> LagSummary:
        with self._lock:
            kept, count = sorted(self._pooled), self._count
        if not kept:
            return LagSummary(count, None, None, None)
        return LagSummary(count, _quantile(kept, 0.5), _quantile(kept, 0.99), kept[-1])


def _quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 6)
