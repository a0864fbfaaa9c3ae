"""Delivery metrics across runs: deployments, change failure rate, recovery times, the
DORA levels, rehearsal freshness; as figures (text, JSON, CSV) and as Prometheus metrics.
docs/metrics.md defines every figure."""

from __future__ import annotations

from backout.metrics.facts import Dataset, RehearsalFact, RunFact, load
from backout.metrics.figures import Figures, summarize
from backout.metrics.prometheus import collector, exposition, registry_of
from backout.metrics.window import Window, window_of

__all__ = [
    "Dataset",
    "Figures",
    "RehearsalFact",
    "RunFact",
    "Window",
    "collector",
    "exposition",
    "load",
    "registry_of",
    "summarize",
    "window_of",
]
