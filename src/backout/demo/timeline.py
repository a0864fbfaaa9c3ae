"""The demo's timeline: what happened when, printed live and returned as data.

Times are monotonic seconds since the demo started; engine events are stamped when the
engine reports them (right after they are durably journaled).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape

from backout.engine.view import Event, RunView


@dataclass(frozen=True)
class Entry:
    t_s: float
    event: str


class Timeline:
    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.started = time.monotonic()
        self.entries: list[Entry] = []
        self.finished_at: float | None = None  # when the engine finished the run

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, text: str, style: str = "") -> float:
        entry = Entry(self.now(), text)
        self.entries.append(entry)
        if not self.quiet:
            line = f"[{style}]{escape(text)}[/]" if style else escape(text)
            self.console.print(f"[dim]{entry.t_s:6.2f}s[/]  {line}", soft_wrap=True)
        return entry.t_s

    def to_json(self) -> list[dict[str, Any]]:
        return [{"t_s": round(e.t_s, 3), "event": e.event} for e in self.entries]

    def observer(self, event: Event, view: RunView) -> None:
        """An engine observer: one timeline entry per step, check and run transition."""
        text = engine_line(event, view)
        if text is None:
            return
        style = ""
        if event.kind == "run_finished":
            style = "bold green" if event.data.get("outcome") == "succeeded" else "bold red"
        at = self.add(text, style)
        if event.kind == "run_finished":
            self.finished_at = at


def engine_line(event: Event, view: RunView) -> str | None:
    data = event.data
    number = (event.step or 0) + 1
    if event.kind == "run_started":
        return f"backout run {view.run_id} started"
    if event.kind == "step_started":
        return f"step {number} started: {view.steps[number - 1].name}"
    if event.kind in ("step_finished", "step_retrying"):
        outcome = data.get("outcome", "retrying")
        return f"step {number} {outcome} in {data.get('duration_s', 0):.2f}s: {data.get('summary')}"
    if event.kind == "check_finished":
        verdict = "passed" if data.get("passed") else "failed"
        return f"verify {number} {verdict}: {view.checks[number - 1].name} ({data.get('reason')})"
    if event.kind == "run_needs_attention":
        return f"run needs attention: {data.get('message')}"
    if event.kind == "run_finished":
        return f"run {data.get('outcome')}: {data.get('message')}"
    return None
