"""DORA performance levels: the 2023 Accelerate State of DevOps report's clusters, with
the thresholds Apache DevLake publishes for them where the report's ranges overlap or
leave gaps. Every boundary is written here once, with which side it belongs to; the
tests pin each edge and docs/metrics.md lists them.

change failure rate        elite <= 5%  <  high <= 10%  <  medium <= 15%  <  low
failed deployment          elite < 1h  <=  high < 1 day  <=  medium <= 7 days  <  low
  recovery time (median, deploy -> restored)
deployment frequency       elite: median deployment days per week >= 5
                           high:  median deployment days per week >= 1
                           medium: median deployment days per 30 days >= 1
                           low:   otherwise
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Literal

Level = Literal["elite", "high", "medium", "low"]
LEVELS: tuple[Level, ...] = ("elite", "high", "medium", "low")
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
MONTH = 30 * DAY  # a "month" of the frequency rule: 30 days, counted back from --until


def change_failure_level(failed: int, deployments: int) -> Level | None:
    """By whole numbers, so 1 of 20 is exactly 5% (elite) with no rounding in between."""
    if deployments <= 0:
        return None
    if failed * 100 <= 5 * deployments:
        return "elite"
    if failed * 100 <= 10 * deployments:
        return "high"
    if failed * 100 <= 15 * deployments:
        return "medium"
    return "low"


def recovery_level(median_s: float | None) -> Level | None:
    if median_s is None:
        return None
    if median_s < HOUR:
        return "elite"
    if median_s < DAY:
        return "high"
    if median_s <= WEEK:
        return "medium"
    return "low"


def deployment_days(times: Iterable[float], until: float) -> set[int]:
    """The days (24-hour slots counted back from ``until``: slot 0 is the last 24 hours)
    on which at least one deployment was made."""
    return {int((until - at) // DAY) for at in times if at < until}


def _per_period(days: set[int], slots: int, periods: int) -> list[int]:
    counts = [0] * periods
    for day in days:
        if day // slots < periods:
            counts[day // slots] += 1
    return counts


def frequency_level(days: set[int], window_days: float | None) -> Level | None:
    """From the deployment days of a window of ``window_days``: complete weeks (and 30-day
    periods) counted back from the window's end; the days before the first complete
    period are left out. None for a window shorter than a week (or the whole store)."""
    if window_days is None:
        return None
    weeks = int(window_days // 7)
    if weeks < 1:
        return None
    weekly = statistics.median(_per_period(days, 7, weeks))
    if weekly >= 5:
        return "elite"
    if weekly >= 1:
        return "high"
    months = int(window_days // 30)
    if months >= 1:
        monthly = statistics.median(_per_period(days, 30, months))
    else:  # a window of 1 to 4 weeks: its deployment days in all (at most one "month")
        monthly = len(_per_period_days(days, weeks * 7))
    return "medium" if monthly >= 1 else "low"


def _per_period_days(days: set[int], slots: int) -> set[int]:
    return {day for day in days if day < slots}
