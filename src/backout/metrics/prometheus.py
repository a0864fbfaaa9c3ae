"""The figures as Prometheus metrics: ``backout metrics --prometheus`` writes them in the
text exposition format (for node_exporter's textfile collector), and a server's
``/metrics`` can register :func:`collector` to compute them on every scrape.

Counters count runs from the start of the window (by default the whole store), so they
only grow and PromQL's ``increase()`` gives any window; histograms use buckets that
include the DORA recovery edges (1 hour, 1 day, 1 week), so the share of recoveries under
each edge is a bucket ratio.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from backout.metrics.facts import Dataset, RunFact

# seconds: 10s .. 1 week, with the DORA edges 3600 (1h), 86400 (1 day) and 604800 (1 week)
BUCKETS: tuple[float, ...] = (
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    21600.0,
    86400.0,
    604800.0,
)
SERVICE = ("service", "environment")
# every metric name this module exports (as written in a query: counters with _total,
# histograms as their _bucket/_sum/_count series); the Grafana example may use no other
METRICS = {
    "backout_runs_total": "Runs by service, mode (deploy, watch, backout, rehearsal) and outcome.",
    "backout_deployments_total": "Deployments: deploy and watch runs that began.",
    "backout_failed_deployments_total": "Deployments that backed out, once per deployment.",
    "backout_unplanned_backouts_total": "Backouts run by hand (`backout run`), with no deploy.",
    "backout_change_failure_ratio": "Failed deployments / deployments.",
    "backout_recovery_time_seconds": "Failed deployment recovery time, from the deploy "
    "(start=deploy) or from the detection (start=detection) to the service restored.",
    "backout_time_to_detect_seconds": "From a failed deployment's start to its first trigger.",
    "backout_backout_duration_seconds": "From a backout's start to the service restored.",
    "backout_time_to_first_update_seconds": "From an incident's start to its first update.",
    "backout_rehearsals_total": "Rehearsal drills recorded, by plan and outcome.",
    "backout_rehearsal_last_pass_timestamp_seconds": "When each plan's rehearsal last passed.",
}
HISTOGRAMS = {
    "backout_recovery_time_seconds",
    "backout_time_to_detect_seconds",
    "backout_backout_duration_seconds",
    "backout_time_to_first_update_seconds",
}


def exported_series() -> set[str]:
    """Every series name a query may use: counters and gauges as named, histograms as
    ``_bucket``, ``_sum`` and ``_count``."""
    names = set(METRICS) - HISTOGRAMS
    for name in HISTOGRAMS:
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def _help(name: str) -> str:
    return METRICS[name]


def _counter(name: str, labels: Sequence[str], counts: dict[tuple[str, ...], int]) -> Metric:
    family = CounterMetricFamily(name.removesuffix("_total"), _help(name), labels=labels)
    for key, value in sorted(counts.items()):
        family.add_metric(key, value)
    return family


def _histogram(
    name: str, labels: Sequence[str], values: dict[tuple[str, ...], list[float]]
) -> Metric:
    family = HistogramMetricFamily(name, _help(name), labels=labels)
    for key, observed in sorted(values.items()):
        ordered = sorted(observed)
        buckets = [(str(b), float(bisect_right(ordered, b))) for b in BUCKETS]
        buckets.append(("+Inf", float(len(ordered))))  # a bucket counts values <= its le
        family.add_metric(key, buckets, math.fsum(ordered))
    return family


def _where(run: RunFact) -> tuple[str, str]:
    return (run.service, run.environment)


def _run_families(runs: Sequence[RunFact], updates: dict[str, float]) -> Iterator[Metric]:
    outcomes: dict[tuple[str, ...], int] = defaultdict(int)
    counts: dict[str, dict[tuple[str, ...], int]] = defaultdict(lambda: defaultdict(int))
    spans: dict[str, dict[tuple[str, ...], list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        outcomes[(*_where(run), run.mode, run.outcome)] += 1
        if run.mode == "rehearsal":
            continue
        _count_run(run, counts, spans)
        if run.run_id in updates:
            spans["backout_time_to_first_update_seconds"][_where(run)].append(updates[run.run_id])
    yield _counter("backout_runs_total", (*SERVICE, "mode", "outcome"), outcomes)
    for name in (
        "backout_deployments_total",
        "backout_failed_deployments_total",
        "backout_unplanned_backouts_total",
    ):
        yield _counter(name, SERVICE, counts[name])
    yield _ratio(counts)
    yield _histogram("backout_recovery_time_seconds", (*SERVICE, "start"), spans["recovery"])
    for name, labels in (
        ("backout_time_to_detect_seconds", SERVICE),
        ("backout_backout_duration_seconds", (*SERVICE, "mode")),
        ("backout_time_to_first_update_seconds", SERVICE),
    ):
        yield _histogram(name, labels, spans[name])


def _count_run(
    run: RunFact,
    counts: dict[str, dict[tuple[str, ...], int]],
    spans: dict[str, dict[tuple[str, ...], list[float]]],
) -> None:
    where = _where(run)
    counts["backout_deployments_total"][where] += run.is_deployment
    counts["backout_failed_deployments_total"][where] += run.failed_deployment
    counts["backout_unplanned_backouts_total"][where] += run.unplanned_backout
    restored = run.restored_at
    if restored is not None:
        spans["backout_backout_duration_seconds"][(*where, run.mode)].append(
            restored - run.backout_began
        )
    if not run.failed_deployment:
        return
    detection = run.detection
    if detection is not None:
        spans["backout_time_to_detect_seconds"][where].append(detection - run.started_at)
    if restored is not None:
        spans["recovery"][(*where, "deploy")].append(restored - run.started_at)
        if detection is not None:
            spans["recovery"][(*where, "detection")].append(restored - detection)


def _ratio(counts: dict[str, dict[tuple[str, ...], int]]) -> Metric:
    name = "backout_change_failure_ratio"
    family = GaugeMetricFamily(name, _help(name), labels=SERVICE)
    failed = counts["backout_failed_deployments_total"]
    for key, deployed in sorted(counts["backout_deployments_total"].items()):
        if deployed:
            family.add_metric(key, failed.get(key, 0) / deployed)
    return family


def _rehearsal_families(data: Dataset) -> Iterable[Metric]:
    outcomes: dict[tuple[str, ...], int] = defaultdict(int)
    for drill in data.rehearsals:
        outcomes[(drill.plan, "passed" if drill.passed else "failed")] += 1
    yield _counter("backout_rehearsals_total", ("plan", "outcome"), outcomes)
    name = "backout_rehearsal_last_pass_timestamp_seconds"
    family = GaugeMetricFamily(name, _help(name), labels=("plan",))
    for plan, at in sorted(data.last_pass.items()):
        family.add_metric((plan,), at)
    yield family


def families(data: Dataset) -> Iterator[Metric]:
    """Every metric family, computed from one dataset."""
    yield from _run_families(data.runs, data.first_updates)
    yield from _rehearsal_families(data)


class DatasetCollector(Collector):
    """A collector that reads a fresh dataset on every collection (a server's scrape)."""

    def __init__(self, load: Callable[[], Dataset]) -> None:
        self._load = load

    def collect(self) -> Iterable[Metric]:
        return list(families(self._load()))


def collector(load: Callable[[], Dataset]) -> Collector:
    return DatasetCollector(load)


def registry_of(data: Dataset) -> CollectorRegistry:
    """A registry holding the dataset's metrics (nothing of this process's own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector(lambda: data))
    return registry


def exposition(data: Dataset) -> str:
    """The text exposition format, as node_exporter's textfile collector reads it."""
    return generate_latest(registry_of(data)).decode()
