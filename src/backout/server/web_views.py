"""What the dashboard's pages show, gathered from the store: a page of runs with what the
runs list needs beyond :class:`~backout.reports.RunSummary` (mode, environment, trigger,
the plan's RTO), and one run's report, journal, explanation and charts.

Every value is redacted with the run's secrets, as the post-incident report redacts them
(the journal was redacted when it was written; this covers what the plan names besides).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from backout import commands
from backout.commands.caller import Caller
from backout.errors import BackoutError, UsageError
from backout.kernel.durations import parse_duration
from backout.kernel.events import EventKind
from backout.kernel.states import RUN_TERMINAL
from backout.postmortem.gather import redactor_of
from backout.redact import Redactor
from backout.render import journal_json
from backout.server import pages
from backout.store import repo
from backout.store.models import EventRow, RunRow

log = logging.getLogger("backout.server")
TERMINAL = frozenset(status.value for status in RUN_TERMINAL)
KINDS = tuple(kind.value for kind in EventKind)


def utc(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def rto_of(plan_doc: dict[str, Any]) -> float | None:
    """The plan's ``rto`` in seconds, as the run recorded the plan; None without one."""
    plan = plan_doc.get("plan")
    raw = plan.get("rto") if isinstance(plan, dict) else None
    if raw is None:
        return None
    with contextlib.suppress(ValueError, TypeError):
        return float(parse_duration(raw))
    return None


@dataclass(frozen=True)
class RunLine:
    """One row of the runs list."""

    run_id: str
    plan: str
    service: str
    environment: str
    mode: str
    status: str
    result: str
    trigger: str
    created: str
    duration: str
    rto: str
    over_rto: bool


@dataclass(frozen=True)
class RunsPage:
    lines: list[RunLine]
    next_cursor: str | None


def runs_page(caller: Caller, filters: pages.Filters, limit: int, cursor: str | None) -> RunsPage:
    """A page of runs, newest first, cut by the same keyset as ``GET /api/v1/runs``."""
    if not 1 <= limit <= pages.MAX_LIMIT:
        raise UsageError(f"limit must be 1 to {pages.MAX_LIMIT}, not {limit}")
    after = pages.decode_cursor(cursor) if cursor else None
    now = time.time()
    with caller.store.session(read_only=True) as session:
        rows = list(session.scalars(pages.page_query(filters, limit, after)))
        more = len(rows) > limit
        rows = rows[:limit]
        ids = [row.id for row in rows]
        fired = session.execute(
            select(EventRow.run_id, EventRow.data).where(
                EventRow.run_id.in_(ids),
                EventRow.kind.in_([EventKind.BACKOUT_STARTED, EventKind.RUN_FINISHED]),
            )
        )
        triggers: dict[str, str] = {}
        results: dict[str, str] = {}
        for run_id, data in fired:
            if not isinstance(data, dict):
                continue
            if data.get("trigger"):
                triggers[run_id] = str(data["trigger"])
            elif data.get("reason") and run_id not in triggers:
                triggers[run_id] = "manual"
            if data.get("result"):
                results[run_id] = str(data["result"])
        lines = [_line(row, triggers, results, now) for row in rows]
        last = rows[-1] if more else None
    following = pages.encode_cursor(last.created_at, last.id) if last is not None else None
    return RunsPage(lines, following)


def _line(row: RunRow, triggers: dict[str, str], results: dict[str, str], now: float) -> RunLine:
    doc = row.plan_doc if isinstance(row.plan_doc, dict) else {}
    end = row.finished_at if row.finished_at is not None else now
    took = max(0.0, end - row.created_at)
    rto = rto_of(doc)
    return RunLine(
        run_id=row.id,
        plan=row.plan,
        service=row.service,
        environment=str(doc.get("environment") or ""),
        mode=row.mode,
        status=row.status,
        result=results.get(row.id, ""),
        trigger=triggers.get(row.id, ""),
        created=utc(row.created_at),
        duration=seconds(took) + ("" if row.finished_at is not None else " so far"),
        rto=seconds(rto) if rto is not None else "",
        over_rto=rto is not None and took > rto,
    )


@dataclass(frozen=True)
class RunPage:
    """Everything the run page shows, redacted."""

    report: dict[str, Any]
    mode: str
    environment: str
    rto: str
    over_rto: bool
    events: list[dict[str, Any]]
    last_seq: int
    explanation: list[str]
    signal_svg: str | None
    steps_svg: str | None

    @property
    def over(self) -> bool:
        return str(self.report["status"]) in TERMINAL


def run_page(caller: Caller, run_id: str) -> RunPage:
    """The run's page; NotFound (404) when no run has that id (or unique prefix)."""
    report, lines = commands.explain_run(caller, run_id)
    events = commands.journal(caller, report.run_id)
    with caller.store.session(read_only=True) as session:
        row = repo.get_run(session, report.run_id)
        doc = dict(row.plan_doc) if isinstance(row.plan_doc, dict) else {}
        mode = row.mode
        redactor = _redactor(row)
    signal_svg, steps_svg = _charts(caller, report.run_id)
    rto = rto_of(doc)
    took = report.duration_s
    if took is None:
        took = time.time() - report.created_at
    timeline = []
    for event in events:
        shown = journal_json(event)
        data = shown.get("data") or {}
        timeline.append(
            {
                **shown,
                "when": utc(event.at),
                "details": json.dumps(data, ensure_ascii=False, sort_keys=True) if data else "",
            }
        )
    return RunPage(
        report=redactor.value(report.to_json()),
        mode=mode,
        environment=str(doc.get("environment") or ""),
        rto=seconds(rto) if rto is not None else "",
        over_rto=rto is not None and took > rto,
        events=redactor.value(timeline),
        last_seq=events[-1].seq if events else 0,
        explanation=[redactor(line) for line in lines],
        signal_svg=signal_svg,
        steps_svg=steps_svg,
    )


def _redactor(row: RunRow) -> Redactor:
    try:
        return redactor_of(row)
    except (BackoutError, ValidationError, KeyError, TypeError, ValueError):
        return Redactor()


def _charts(caller: Caller, run_id: str) -> tuple[str | None, str | None]:
    """The post-incident report's charts (already escaped and redacted), when it can be
    drafted for the run; a run it cannot be drafted for has none."""
    try:
        drawn = commands.report_draft(caller, run_id).charts()
    except (BackoutError, ValidationError, KeyError, TypeError, ValueError) as exc:
        log.info("no charts for run %s: %s", run_id, type(exc).__name__)
        return None, None
    return drawn.signal, drawn.steps
