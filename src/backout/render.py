"""Human output for the CLI: tables, live progress, issue lists (rich)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from backout.errors import Issue
from backout.kernel.events import CHECK_EVENTS, Event, EventKind

if TYPE_CHECKING:  # annotations only: `validate` prints issues without the run machinery
    from rich.table import Table

    from backout.engine.view import RunView
    from backout.reports import DryRunReport, Handoff, RunReport, RunSummary

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "needs_attention": "yellow",
    "running": "cyan",
    "pending": "dim",
    "skipped": "dim",
    "not_run": "dim",
}


def clock(at: float | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def _plain(data: Any) -> Any:
    """A typed result (anything with ``to_json``), or lists and dicts of them, as JSON data."""
    if hasattr(data, "to_json"):
        return data.to_json()
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    return data


def print_json(console: Console, data: Any) -> None:
    """Print a result as JSON: typed results through their ``to_json``. Highlighted on a
    terminal; written straight through otherwise (the same text: highlighting a fleet's
    megabytes for a pipe would take minutes)."""
    if console.is_terminal:
        console.print_json(json.dumps(_plain(data), default=str))
        return
    text = json.dumps(_plain(data), default=str, indent=2, ensure_ascii=False)
    console.file.write(text + "\n")
    console.file.flush()


def print_issues(console: Console, issues: list[Issue]) -> None:
    for issue in issues:
        color = "red" if issue.severity == "error" else "yellow"
        console.print(f"[{color}]{issue.severity}[/]: {escape(str(issue))}", soft_wrap=True)


def run_table(report: RunReport) -> Table:
    from rich.table import Table  # 3 ms of imports (fractions, decimal) `validate` needs not

    table = Table(
        title=f"run {report.run_id} · {report.plan} · {styled(report.status)}", title_justify="left"
    )
    for column in ("#", "step", "status", "attempts", "duration", "result"):
        table.add_column(column)
    omitted = set(not_needed(report))
    for step in (s for s in report.steps if s.number not in omitted):
        table.add_row(
            str(step.number),
            escape(step.name),
            styled(step.status),
            str(step.attempts),
            seconds(step.duration_s),
            escape(step.summary),
        )
    unchecked = set(checks_not_needed(report))
    for check in (c for c in report.checks if c.number not in unchecked):
        state = "-" if check.passed is None else ("passed" if check.passed else "failed")
        table.add_row(
            f"v{check.number}",
            f"verify: {escape(check.name)}",
            styled({"passed": "succeeded", "failed": "failed"}.get(state, state)),
            str(check.attempts),
            "",
            escape(check.reason),
        )
    return table


def not_needed(report: RunReport) -> list[int]:
    """The steps a promoted deploy or a healthy watch never needed (its undo and backout
    steps): the table leaves them out and says so in one line."""
    if report.result not in ("promoted", "healthy"):
        return []
    return [s.number for s in report.steps if s.status == "not_run"]


def checks_not_needed(report: RunReport) -> list[int]:
    """The verify checks of a promoted deploy or a healthy watch: they check a backout."""
    if report.result not in ("promoted", "healthy"):
        return []
    return [c.number for c in report.checks if c.passed is None and not c.attempts]


def number_ranges(numbers: list[int]) -> str:
    """``[5, 6, 7, 9]`` as ``5-7, 9``."""
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][-1] + 1:
            spans[-1].append(number)
        else:
            spans.append([number])
    return ", ".join(f"{s[0]}-{s[-1]}" if len(s) > 1 else str(s[0]) for s in spans)


def not_needed_line(report: RunReport) -> str | None:
    """``steps 5-9 and verify 1-2 not needed (promoted): …`` under a run's table, or None."""
    steps, checks = not_needed(report), checks_not_needed(report)
    parts = []
    if steps:
        parts.append(f"{'steps' if len(steps) > 1 else 'step'} {number_ranges(steps)}")
    if checks:
        parts.append(f"verify {number_ranges(checks)}")
    if not parts:
        return None
    which = "the undo and backout steps" if report.result == "promoted" else "the backout steps"
    return (
        f"{' and '.join(parts)} not needed ({report.result}): {which} and their checks "
        "run only when a trigger fires"
    )


def print_run(console: Console, report: RunReport) -> None:
    table = run_table(report)
    # a healthy watch of a plan without checks has no row left: its title says it all
    console.print(table if table.row_count else table.title)
    note = not_needed_line(report)
    if note:
        console.print(f"[dim]{escape(note)}[/]", soft_wrap=True)
    line = f"{styled(report.status)} in {seconds(report.duration_s)}"
    if report.message:
        line += f" — {escape(report.message)}"
    console.print(line, soft_wrap=True)
    if report.handoff is not None:
        console.print(escape(handoff_line(report.handoff)), soft_wrap=True)


def handoff_line(handoff: Handoff) -> str:
    """One line on the hand-off to disaster recovery after a failed backout."""
    parts = [f"disaster recovery is with {handoff.owner}"]
    if handoff.runbook:
        parts.append(f"runbook {handoff.runbook}")
    if handoff.started:
        parts.append(f"recovery run {handoff.recovery_run} {handoff.recovery_status}")
    elif handoff.outcome:
        parts.append(handoff.outcome)
    return "hand-off: " + "; ".join(parts)


def print_dry_run(console: Console, report: DryRunReport) -> None:
    snap = f"snapshot #{report.snapshot_id}" if report.snapshot_id else "no snapshot"
    console.print(
        f"[bold]dry run[/] of {escape(report.plan)} for service {report.service} ({snap}); "
        "nothing is executed"
    )
    for step in report.steps:
        console.print(
            f"{step.number}. {escape(step.name)}  [dim]{step.action} · timeout "
            f"{step.timeout_s:g}s · retries {step.retries} · "
            f"{'idempotent' if step.idempotent else 'not idempotent'}[/]"
        )
        console.print(f"   {escape(json.dumps(step.rendered))}", soft_wrap=True)
    for check in report.checks:
        console.print(
            f"v{check['number']}. verify {escape(check['name'])}  [dim]{check['check']}[/]"
        )
        console.print(f"   {escape(json.dumps(check['rendered']))}", soft_wrap=True)
    for problem in report.problems:
        console.print(f"[yellow]problem[/]: {escape(problem)}", soft_wrap=True)


def event_detail(event: Event) -> str:
    data = {k: v for k, v in event.data.items() if k not in ("output",) and v not in ("", None)}
    return escape(", ".join(f"{k}={v}" for k, v in data.items()))


def journal_lines(events: list[Event]) -> list[str]:
    lines = []
    for event in events:
        where = (
            ""
            if event.step is None
            else f" {'check' if event.kind in CHECK_EVENTS else 'step'} {event.step + 1}"
        )
        attempt = "" if event.attempt is None else f" #{event.attempt}"
        lines.append(
            f"{event.seq:>4}  {clock(event.at)[11:]}  {event.kind}{where}{attempt}"
            f"  [dim]{event_detail(event)}[/]"
        )
    return lines


def journal_json(event: Event) -> dict[str, Any]:
    """One event as ``backout journal --json`` prints it. ``step`` is the number the text
    shows and ``resume --mark-done`` takes (1-based: step 1, check 1); ``step_index`` is
    its 0-based place in the plan's list (the journal's own ``step``)."""
    step = None if event.step is None else event.step + 1
    return {
        "seq": event.seq,
        "at": event.at,
        "kind": str(event.kind),
        "step": step,
        "step_index": event.step,
        "attempt": event.attempt,
        "data": event.data,
    }


def telemetry_line(name: str, reading: dict[str, Any]) -> str:
    """A signal read by ``backout snapshot``: ``telemetry errors: ok, value 0.01 (3 of
    300)``, or ``telemetry errors: no data`` when the source returned nothing."""
    status = str(reading.get("status", ""))
    value = reading.get("value")
    if value is None:
        state = "no data" if status in ("no_data", "ok", "") else f"{status}, no data"
        return f"telemetry {escape(name)}: {state}"
    counts = (
        f" ({reading['events']} of {reading['trials']})"
        if reading.get("trials") is not None
        else ""
    )
    return f"telemetry {escape(name)}: {status}, value {value}{counts}"


def runs_table(rows: list[RunSummary]) -> Table:
    from rich.table import Table

    table = Table()
    # the id is what people copy: never wrapped or cut, however narrow the terminal
    width = max((len(row.run_id) for row in rows), default=3)
    table.add_column("run", no_wrap=True, min_width=width)
    for column in ("plan", "service", "status", "created (UTC)", "actor", "message"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.run_id,
            row.plan,
            row.service,
            styled(row.status),
            clock(row.created_at),
            escape(row.actor),
            escape(row.message[:80]),
        )
    return table


class Progress:
    """Observer that prints each step as it starts and ends, with a live spinner between.

    The engine calls it between a journal write and what follows (a step's program waits
    for its ``step_started`` to be written, then goes): it only words the line there and
    hands it to a display thread of its own, so neither the terminal nor rich's first
    spinner (about 10 ms to set up) ever holds a step back, and a stderr nobody reads
    cannot stall a backout. Lines keep their order; :meth:`close` shows what is left."""

    CLOSE_WAIT_S = 5.0  # at most this long for the last lines at the end (a stuck stderr)

    def __init__(self, console: Console) -> None:
        self.console = console
        self.run_id: str | None = None
        self._status: Any = None
        self._lines: queue.SimpleQueue[tuple[str, str | None] | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def __call__(self, event: Event, view: RunView) -> None:
        self.run_id = view.run_id
        text = self._line(event, view)
        if text is None:
            return
        spinner: str | None = None
        if event.kind in (EventKind.STEP_STARTED, EventKind.CHECK_STARTED, EventKind.STEP_RETRYING):
            name = (
                (
                    view.steps[event.step].name
                    if event.kind != EventKind.CHECK_STARTED
                    else view.checks[event.step or 0].name
                )
                if event.step is not None
                else ""
            )
            spinner = f"{escape(name)} …"
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._display, name="backout-progress", daemon=True
            )
            self._thread.start()
        self._lines.put((text, spinner))

    def flush(self) -> None:
        """Wait (at most ``CLOSE_WAIT_S``) until the lines handed over so far are shown."""
        if self._thread is not None:
            shown = threading.Event()
            self._lines.put(shown)
            shown.wait(self.CLOSE_WAIT_S)

    def close(self) -> None:
        """Show the lines still queued and stop the spinner (once the run ended)."""
        if self._thread is not None:
            self._lines.put(None)
            self._thread.join(self.CLOSE_WAIT_S)
            self._thread = None
        self._stop_spinner()

    def _display(self) -> None:
        # a spinner only where someone watches it: elsewhere it would only start and stop
        # a refresh thread of rich's at every step
        spin = self.console.is_terminal and not self.console.is_dumb_terminal
        while True:
            batch = [self._lines.get()]
            with contextlib.suppress(queue.Empty):  # and all that came meanwhile, at once
                while batch[-1] is not None:
                    batch.append(self._lines.get_nowait())
            lines: list[str] = []
            spinner: str | None = None  # the last line's, if it has one
            for item in batch:
                if item is None:
                    self._show(lines, None)
                    return
                if isinstance(item, threading.Event):  # a flush: all before it is shown
                    self._show(lines, spinner if spin else None)
                    lines, spinner = [], None
                    item.set()
                    continue
                lines.append(item[0])
                spinner = item[1]
            self._show(lines, spinner if spin else None)

    def _show(self, lines: list[str], spinner: str | None) -> None:
        if not lines:
            return
        self._stop_spinner()
        self.console.print("\n".join(lines), soft_wrap=True)
        if spinner is not None:
            self._status = self.console.status(spinner)
            self._status.start()

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _line(self, event: Event, view: RunView) -> str | None:
        stamp = f"[dim]{clock(event.at)[11:]}[/]"
        number = "" if event.step is None else str(event.step + 1)
        if event.kind == EventKind.RUN_STARTED:
            return f"{stamp} run {view.run_id} started"
        if event.kind == EventKind.RUN_RESUMED:
            return f"{stamp} run {view.run_id} resumed"
        if event.kind == EventKind.STEP_STARTED:
            return f"{stamp} ▶ step {number} {escape(view.steps[event.step or 0].name)}" + (
                f" (attempt {event.attempt})" if (event.attempt or 1) > 1 else ""
            )
        if event.kind == EventKind.STEP_RETRYING:
            return f"{stamp} step {number} {retry_text(event)}"
        if event.kind in (EventKind.STEP_FINISHED, EventKind.STEP_SKIPPED):
            outcome = event.data.get("outcome", "skipped")
            took = event.data.get("duration_s")
            took_text = f" in {took:.2f}s" if isinstance(took, float | int) else ""
            said = str(event.data.get("summary") or event.data.get("reason", ""))
            return f"{stamp} {styled(str(outcome))} step {number}{took_text}{_said(said)}"
        if event.kind == EventKind.CHECK_FINISHED:
            ok = "[green]passed[/]" if event.data.get("passed") else "[red]failed[/]"
            return f"{stamp} {ok} verify {number}{_said(str(event.data.get('reason', '')))}"
        if event.kind in (EventKind.RUN_FINISHED, EventKind.RUN_NEEDS_ATTENTION):
            status = event.data.get("outcome", "needs_attention")
            return f"{stamp} {styled(str(status))}: {escape(str(event.data.get('message', '')))}"
        if event.kind in _FLOW_LINES:
            return f"{stamp} {_FLOW_LINES[event.kind](event.data)}"
        if event.kind == EventKind.WARNING:
            note = escape(str(event.data.get("message", "")))
            return f"{stamp} [yellow]note[/] step {number}: {note}"
        return None


def _said(text: str) -> str:
    """``": TEXT"`` after a line's subject, or nothing: a line never ends in a colon."""
    return f": {escape(text)}" if text else ""


def retry_text(event: Event) -> str:
    """A failed attempt that another follows: ``attempt 1 failed in 0.03s (exit code 1);
    retrying in 2s (attempt 2 of 3)``, the delay being the wait before the next attempt."""
    attempt = event.attempt or 1
    took = event.data.get("duration_s")
    took_text = f" in {took:.2f}s" if isinstance(took, float | int) else ""
    said = str(event.data.get("summary", ""))
    why = f" ({escape(said)})" if said else ""
    delay = event.data.get("delay_s")
    wait = f" in {delay:g}s" if isinstance(delay, float | int) else ""
    last = event.data.get("last_attempt")
    of = f" of {last}" if isinstance(last, int) else ""  # journals before it lack it
    return (
        f"attempt {attempt} [red]failed[/]{took_text}{why}; "
        f"[yellow]retrying[/]{wait} (attempt {attempt + 1}{of})"
    )


def _stage(data: dict[str, Any]) -> str:
    return f"stage {int(data.get('stage', 0)) + 1} {escape(str(data.get('name', '')))!s}"


_FLOW_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    EventKind.WATCH_STARTED: lambda d: f"watching the triggers for {d.get('seconds', 0):g}s",
    EventKind.CHECKPOINT_STARTED: lambda d: (
        f"[bold]checkpoint[/] {_stage(d)}: holding "
        f"{d.get('hold_s', 0):g}s" + (" then waiting for approval" if d.get("approve") else "")
    ),
    EventKind.CHECKPOINT_PASSED: lambda d: f"[green]passed[/] checkpoint {_stage(d)}",
    EventKind.TRIGGER_FIRED: lambda d: (
        f"[red]trigger fired[/] {escape(str(d.get('trigger')))}: {escape(str(d.get('summary')))}"
    ),
    EventKind.BACKOUT_STARTED: lambda d: "[yellow]backing out[/]",
    EventKind.STAGE_APPROVED: lambda d: f"approved by {escape(str(d.get('actor')))}",
    EventKind.PROMOTED: lambda d: "[green]promoted[/]: the new baseline is recorded",
    EventKind.ALERT_REJECTED: lambda d: (
        f"[yellow]rejected a webhook[/]: {escape(str(d.get('reason')))}"
    ),
    EventKind.ALERT_IGNORED: lambda d: (
        f"[dim]alert {escape(str(d.get('alert')))} not acted on ({escape(str(d.get('why')))})"
        f": {escape(str(d.get('reason')))}[/]"
    ),
}
