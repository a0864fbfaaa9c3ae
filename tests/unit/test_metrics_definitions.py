"""The definitions behind `backout metrics`, without a store: the DORA levels exactly at
each documented edge, the window's forms, the percentile rule, a run's outcome, and the
Grafana example querying only metrics backout exports."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from backout.errors import UsageError
from backout.metrics import dora
from backout.metrics.facts import outcome_of
from backout.metrics.figures import Distribution, percentile
from backout.metrics.prometheus import exported_series
from backout.metrics.text import span
from backout.metrics.window import DAY, window_of

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0


@pytest.mark.parametrize(
    ("failed", "deployments", "level"),
    [
        (0, 10, "elite"),
        (1, 20, "elite"),  # exactly 5%
        (21, 400, "high"),  # 5.25%
        (2, 20, "high"),  # exactly 10%
        (41, 400, "medium"),  # 10.25%
        (3, 20, "medium"),  # exactly 15%
        (61, 400, "low"),  # 15.25%
        (4, 23, "low"),  # DevLake's 17.4%
        (0, 0, None),  # no deployments: no level
    ],
)
def test_change_failure_rate_levels_at_each_edge(
    failed: int, deployments: int, level: str | None
) -> None:
    assert dora.change_failure_level(failed, deployments) == level


@pytest.mark.parametrize(
    ("median", "level"),
    [
        (HOUR - 0.001, "elite"),
        (HOUR, "high"),  # "less than one hour" is elite: one hour is not
        (DAY - 0.001, "high"),
        (DAY, "medium"),  # "less than one day" is high: one day is not
        (7 * DAY, "medium"),  # "between one day and one week": a week is still medium
        (7 * DAY + 0.001, "low"),
        (None, None),
    ],
)
def test_recovery_levels_at_each_edge(median: float | None, level: str | None) -> None:
    assert dora.recovery_level(median) == level


def _days(*slots: int) -> set[int]:
    return set(slots)


@pytest.mark.parametrize(
    ("days", "window", "level"),
    [
        # 4 complete weeks in 30 days; slots 28 and 29 are before the first complete week
        (_days(*[w * 7 + d for w in range(4) for d in range(5)]), 30, "elite"),  # 5/week
        (_days(*[w * 7 + d for w in range(4) for d in range(4)]), 30, "high"),  # 4/week
        (_days(0, 7, 14, 21), 30, "high"),  # exactly once a week
        (_days(0, 7), 30, "medium"),  # weekly median 0.5; the one 30-day period has days
        (_days(29), 30, "medium"),  # outside every complete week, inside the 30 days
        (set(), 30, "low"),
        (_days(0, 31), 60, "medium"),  # one day in each 30-day period
        (_days(0), 60, "low"),  # per 30 days: [1, 0], median 0.5
        (_days(0), 6.9, None),  # no complete week: no level
        (_days(0), None, None),  # the whole store: no level
    ],
)
def test_deployment_frequency_levels(days: set[int], window: float | None, level: str) -> None:
    assert dora.frequency_level(days, window) == level


def test_deployment_days_are_24_hour_slots_back_from_the_end() -> None:
    until = 1_000 * DAY
    times = [until - 1, until - DAY + 1, until - DAY, until - 3.5 * DAY, until + 5]
    assert dora.deployment_days(times, until) == {0, 1, 3}


def test_percentile_interpolates_linearly_between_ranks() -> None:
    values = [60.0, 120.0, 180.0, 240.0, 1200.0]
    assert percentile(values, 50) == 180
    assert percentile(values, 90) == pytest.approx(816)
    assert percentile([5.0], 90) == 5
    d = Distribution.of([3.0, 1.0, 2.0])
    assert (d.count, d.median_s, d.p90_s, d.mean_s) == (3, 2.0, 2.8, 2.0)
    assert Distribution.of([]) == Distribution(0, None, None, None)


@pytest.mark.parametrize(
    ("mode", "status", "result", "backout", "outcome"),
    [
        ("deploy", None, None, 5.0, "in_progress"),
        ("deploy", "succeeded", "promoted", None, "promoted"),
        ("watch", "succeeded", "healthy", None, "healthy"),
        ("deploy", "succeeded", "backed_out", 5.0, "backed_out"),
        ("watch", "failed", "failed", 5.0, "backout_failed"),
        ("deploy", "failed", None, 5.0, "backout_failed"),  # its verification failed
        ("deploy", "failed", None, None, "not_started"),
        ("backout", "succeeded", None, None, "backed_out"),
        ("backout", "failed", None, None, "backout_failed"),
        ("rehearsal", "succeeded", "rehearsed", 5.0, "rehearsed"),
        ("rehearsal", "failed", "not_steady", 5.0, "rehearsal_failed"),
    ],
)
def test_outcome_of_a_run(
    mode: str, status: str | None, result: str | None, backout: float | None, outcome: str
) -> None:
    assert outcome_of(mode, status, result, backout) == outcome


NOW = dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("since", "until", "start", "end"),
    [
        (None, None, NOW - 30 * DAY, NOW),
        ("2w", None, NOW - 14 * DAY, NOW),
        ("12h", "1h", NOW - 12 * HOUR, NOW - HOUR),
        ("90m", None, NOW - 5400, NOW),
        ("2026-11-01", "2026-11-02", NOW - 29 * DAY - 16 * HOUR, NOW - 28 * DAY - 16 * HOUR),
        ("2026-11-30T10:00Z", "2026-11-30T14:00+02:00", NOW - 6 * HOUR, NOW - 4 * HOUR),
        ("all", None, None, NOW),
    ],
)
def test_window_forms(
    since: str | None, until: str | None, start: float | None, end: float
) -> None:
    window = window_of(since, until, NOW)
    assert (window.since, window.until) == (start, end)


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("30 days", None, "--since '30 days' is not a time"),
        ("30d", "tomorrow", "--until 'tomorrow' is not a time"),
        ("1d", "2d", "the window is empty"),
    ],
)
def test_bad_window(since: str, until: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        window_of(since, until, NOW)
    assert caught.value.exit_code == 2
    assert caught.value.hint


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.045, "0.045s"),
        (45, "45s"),
        (250, "4m 10s"),
        (3600, "1h"),
        (7500, "2h 5m"),
        (3 * DAY, "3d"),
    ],
)
def test_spans_are_short(seconds: float, text: str) -> None:
    assert span(seconds) == text


def _queries(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [q for value in node.values() for q in _queries(value)]
    if isinstance(node, list):
        return [q for value in node for q in _queries(value)]
    return []


def test_grafana_dashboard_queries_only_metrics_backout_exports() -> None:
    dashboard = json.loads((ROOT / "examples" / "grafana-dashboard.json").read_text())
    assert dashboard["title"]
    assert dashboard["panels"]
    queries = _queries(dashboard)
    assert len(queries) >= 6
    names = {name for q in queries for name in re.findall(r"\bbackout_[a-z_]+", q)}
    exported = exported_series()
    assert names, queries
    assert names <= exported, names - exported
    # the dashboard shows the DORA figures: failure ratio, recovery, backout duration
    assert {
        "backout_failed_deployments_total",
        "backout_deployments_total",
        "backout_recovery_time_seconds_bucket",
        "backout_backout_duration_seconds_bucket",
    } <= names
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
