"""``backout metrics``: delivery figures over a window of runs (docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backout.commands.caller import Caller
from backout.metrics import Dataset, Figures, Window, load, summarize


@dataclass(frozen=True)
class MetricsReport:
    """What was read (for the Prometheus exposition) and the figures computed from it."""

    data: Dataset
    figures: Figures

    def to_json(self) -> dict[str, Any]:
        return self.figures.to_json()


def metrics(
    caller: Caller,
    window: Window,
    service: str | None = None,
    environment: str | None = None,
    team: str | None = None,
) -> MetricsReport:
    """The runs created in ``window`` that match the filters, and their figures. Reads
    only: one transaction, no write lock on SQLite."""
    with caller.store.session(read_only=True) as session:
        data = load(session, window, service, environment, team)
    return MetricsReport(data, summarize(data))
