"""The figures for people (rich tables that fit 80 columns) and for spreadsheets (CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from backout.metrics.figures import Distribution, Figures, Stability
from backout.metrics.window import iso

CSV_COLUMNS = (
    "scope",
    "service",
    "environment",
    "deployments",
    "failed_deployments",
    "change_failure_rate",
    "unrestored",
    "recovery_deploy_median_s",
    "recovery_deploy_p90_s",
    "recovery_detection_median_s",
    "recovery_detection_p90_s",
    "time_to_detect_median_s",
    "time_to_detect_p90_s",
    "backout_duration_median_s",
    "backout_duration_p90_s",
    "unplanned_backouts",
)


def span(seconds: float | None) -> str:
    """``45s``, ``4m 10s``, ``2h 5m``, ``3d 4h``: two units at most."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{seconds:.0f}s"
    whole = round(seconds)
    for unit, size, small, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if whole >= size:
            rest = (whole % size) // small_size
            return f"{whole // size}{unit}" + (f" {rest}{small}" if rest else "")
    return f"{whole}s"  # pragma: no cover - reached only below 60s, handled above


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def distribution(d: Distribution) -> str:
    if not d.count:
        return "-"
    return f"median {span(d.median_s)}, p90 {span(d.p90_s)} (n={d.count})"


def _window(figures: Figures) -> str:
    window = figures.window
    since = iso(window.since) or "the first run"
    days = f" ({window.days:g} days)" if window.days is not None else ""
    filters = ", ".join(f"{k} {v}" for k, v in figures.filters.items() if v)
    return f"{since} to {iso(window.until)}{days}" + (f"; {filters}" if filters else "")


def _level(level: str | None) -> str:
    return level or ""


def _frequency(figures: Figures) -> str:
    f = figures.frequency
    if f.per_day is None or f.per_week is None:
        return f"{figures.stability.deployments}"
    return (
        f"{figures.stability.deployments} ({f.per_day:.2f}/day, {f.per_week:.1f}/week, "
        f"{f.deployment_days} deployment days)"
    )


def _stability_rows(s: Stability, figures: Figures) -> Iterator[tuple[str, str, str]]:
    dora = figures.dora
    in_progress = f", {figures.in_progress} in progress" if figures.in_progress else ""
    yield "deployments", _frequency(figures) + in_progress, _level(dora["deployment_frequency"])
    unrestored = f" ({s.unrestored} not restored)" if s.unrestored else ""
    yield "failed deployments", f"{s.failed_deployments}{unrestored}", ""
    yield "change failure rate", percent(s.change_failure_rate), _level(dora["change_failure_rate"])
    yield (
        "recovery: deploy → restored",
        distribution(s.recovery_deploy),
        _level(dora["recovery_time"]),
    )
    yield "recovery: detected → restored", distribution(s.recovery_detection), ""
    yield "time to detect", distribution(s.time_to_detect), ""
    yield "backout duration", distribution(s.backout_duration), ""


def summary_table(figures: Figures) -> Table:
    table = Table(title=f"delivery metrics, {escape(_window(figures))}", title_justify="left")
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    table.add_column("DORA")
    for row in _stability_rows(figures.stability, figures):
        table.add_row(*row)
    restored = figures.unplanned_restored
    table.add_row("unplanned backouts", f"{figures.unplanned_backouts} ({restored} restored)", "")
    table.add_row("time to first update", distribution(figures.time_to_first_update), "")
    r = figures.rehearsals
    table.add_row("rehearsals", f"{r.total} ({percent(r.pass_rate)} passed)", "")
    return table


def services_table(figures: Figures) -> Table:
    table = Table(title="by service", title_justify="left")
    for column in ("service", "env", "deploys", "failed", "CFR", "recovery (median)"):
        table.add_column(column, overflow="fold")
    for s in figures.services:
        table.add_row(
            escape(s.service),
            escape(s.environment or "-"),
            str(s.stability.deployments),
            str(s.stability.failed_deployments),
            percent(s.stability.change_failure_rate),
            span(s.stability.recovery_deploy.median_s),
        )
    return table


def freshness_table(figures: Figures) -> Table:
    table = Table(title="rehearsal freshness", title_justify="left")
    for column in ("plan", "last passing rehearsal", "days ago"):
        table.add_column(column, overflow="fold")
    for p in figures.rehearsals.plans:
        days = "never" if p.days_since_pass is None else f"{p.days_since_pass:.1f}"
        table.add_row(escape(p.plan), iso(p.last_passed_at) or "-", days)
    return table


def render(figures: Figures) -> RenderableType:
    """The text output: the summary, then per service (when more than one), then each
    plan's rehearsal freshness."""
    if not figures.total_runs and not figures.rehearsals.total:
        return Text(f"no runs in the window ({_window(figures)})")
    parts: list[RenderableType] = [summary_table(figures)]
    if len(figures.services) > 1:
        parts.append(services_table(figures))
    if figures.rehearsals.plans:
        parts.append(freshness_table(figures))
    return Group(*parts)


def _csv_row(scope: str, service: str, env: str, s: Stability, unplanned: int) -> list[object]:
    def value(x: float | None) -> object:
        return "" if x is None else x

    return [
        scope,
        service,
        env,
        s.deployments,
        s.failed_deployments,
        value(s.change_failure_rate),
        s.unrestored,
        value(s.recovery_deploy.median_s),
        value(s.recovery_deploy.p90_s),
        value(s.recovery_detection.median_s),
        value(s.recovery_detection.p90_s),
        value(s.time_to_detect.median_s),
        value(s.time_to_detect.p90_s),
        value(s.backout_duration.median_s),
        value(s.backout_duration.p90_s),
        unplanned,
    ]


def to_csv(figures: Figures) -> str:
    """One row for the whole selection (``scope`` ``all``), then one per service."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(_csv_row("all", "", "", figures.stability, figures.unplanned_backouts))
    for s in figures.services:
        writer.writerow(
            _csv_row("service", s.service, s.environment, s.stability, s.unplanned_backouts)
        )
    return out.getvalue()
