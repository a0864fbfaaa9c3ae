"""Evaluation lag of the watches of one process: from the moment a reading was due to the
moment its detectors had it. Kept per deployment as a Prometheus histogram
(``backout_watch_evaluation_lag_seconds{service}``, served by ``backout watch --metrics``)
and pooled for the summary the watch prints at the end (p50, p99, max)."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KEPT = 200_000  # the pooled summary's most recent readings


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


class LagRecorder:
    """Thread-safe: every watch thread records into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._histogram = Histogram(
            "backout_watch_evaluation_lag_seconds",
            "From a reading being due to the watch's detectors having it.",
            ["service"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.watched = Gauge(
            "backout_watch_deployments",
            "Deployments this process is watching now.",
            registry=self.registry,
        )
        self._kept: deque[float] = deque(maxlen=KEPT)
        self._count = 0
        self._lock = threading.Lock()

    def for_service(self, service: str) -> Callable[[float], None]:
        child = self._histogram.labels(service=service)

        def record(seconds: float) -> None:
            child.observe(seconds)
            with self._lock:
                self._kept.append(seconds)
                self._count += 1

        return record

    def summary(self) -> LagSummary:
        with self._lock:
            kept, count = sorted(self._kept), self._count
        if not kept:
            return LagSummary(count, None, None, None)
        return LagSummary(count, _quantile(kept, 0.5), _quantile(kept, 0.99), kept[-1])


def _quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 6)
