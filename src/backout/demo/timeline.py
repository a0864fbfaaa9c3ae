"""The demo's timeline: what happened when, printed live and returned as data.

Times are seconds since the demo started, on the wall clock the journal uses: an engine
event is placed at the time its journal entry carries, so the timeline and
`backout journal` tell the same story with the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from backout.engine.view import RunView
from backout.kernel.events import Event, EventKind


@dataclass(frozen=True)
class Entry:
    t_s: float
    event: str


class Timeline:
    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.started = time.time()
        self.entries: list[Entry] = []

    def now(self) -> float:
        return time.time() - self.started

    def add(self, text: str, style: str = "", at: float | None = None) -> float:
        """Add an entry at ``at`` (a wall-clock time, e.g. a journal event's), else now."""
        entry = Entry((time.time() if at is None else at) - self.started, text)
        self.entries.append(entry)
        if not self.quiet:
            line = f"[{style}]{escape(text)}[/]" if style else escape(text)
            self.console.print(f"[dim]{entry.t_s:6.2f}s[/]  {line}", soft_wrap=True)
        return entry.t_s

    def to_json(self) -> list[dict[str, Any]]:
        return [{"t_s": round(e.t_s, 3), "event": e.event} for e in self.entries]

    def observer(self, event: Event, view: RunView) -> None:
        """An engine observer: one entry per step, checkpoint, trigger and run transition."""
        text = engine_line(event, view)
        if text is not None:
            self.add(text, _style(event), at=event.at)


def _style(event: Event) -> str:
    if event.kind == EventKind.RUN_FINISHED:
        return "bold green" if event.data.get("outcome") == "succeeded" else "bold red"
    if event.kind == EventKind.TRIGGER_FIRED:
        return "bold yellow"
    return "dim" if event.kind == EventKind.TRIGGER_EVALUATED else ""


def engine_line(event: Event, view: RunView) -> str | None:
    data = event.data
    number = (event.step or 0) + 1
    if event.kind in _STEP_LINES:
        return _STEP_LINES[event.kind](event, view.steps[number - 1].name)
    if event.kind in _TRIGGER_LINES:
        return _TRIGGER_LINES[event.kind](data)
    if event.kind == EventKind.RUN_STARTED:
        return f"run {view.run_id} started"
    if event.kind == EventKind.CHECK_FINISHED:
        verdict = "passed" if data.get("passed") else "failed"
        return f"verify {number} {verdict}: {view.checks[number - 1].name} ({data.get('reason')})"
    if event.kind == EventKind.RUN_NEEDS_ATTENTION:
        return f"run needs attention: {data.get('message')}"
    if event.kind == EventKind.RUN_FINISHED:
        return f"run {data.get('outcome')}: {data.get('message')}"
    return None


def _step_started(event: Event, name: str) -> str:
    return f"step {(event.step or 0) + 1} started: {name}"


def _step_finished(event: Event, name: str) -> str:
    data = event.data
    outcome = data.get("outcome", "retrying")
    return (
        f"step {(event.step or 0) + 1} {outcome} in {data.get('duration_s', 0):.2f}s: "
        f"{data.get('summary')}"
    )


def _step_skipped(event: Event, name: str) -> str:
    return f"step {(event.step or 0) + 1} skipped: {name} ({event.data.get('reason')})"


def _checkpoint_started(data: dict[str, Any]) -> str:
    return f"checkpoint {data.get('name')!r}: watching the triggers for up to {data['hold_s']:g}s"


def _checkpoint_passed(data: dict[str, Any]) -> str:
    return f"checkpoint {data.get('name')!r} passed: no trigger fired"


def _evaluated(data: dict[str, Any]) -> str | None:
    if data.get("verdict") == "fail":
        return None  # the trigger_fired entry right after it says the same
    return f"trigger {data['trigger']!r} {data['verdict']}: {data.get('summary')}"


def _fired(data: dict[str, Any]) -> str:
    return f"detected: {data['trigger']!r} ({data.get('trigger_kind')}) fired: {data['summary']}"


def _backout_started(data: dict[str, Any]) -> str:
    return "backing out: the stage's steps in reverse, newest first, then the plan's steps"


_STEP_LINES: dict[str, Callable[[Event, str], str]] = {
    EventKind.STEP_STARTED: _step_started,
    EventKind.STEP_FINISHED: _step_finished,
    EventKind.STEP_RETRYING: _step_finished,
    EventKind.STEP_SKIPPED: _step_skipped,
}
_TRIGGER_LINES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    EventKind.CHECKPOINT_STARTED: _checkpoint_started,
    EventKind.CHECKPOINT_PASSED: _checkpoint_passed,
    EventKind.TRIGGER_EVALUATED: _evaluated,
    EventKind.TRIGGER_FIRED: _fired,
    EventKind.BACKOUT_STARTED: _backout_started,
    EventKind.PROMOTED: lambda data: "promoted: the new release is the baseline now",
}
