"""Every journal event as one line of the report's timeline, in plain words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backout.kernel.events import CHECK_EVENTS, Event, EventKind, describe
from backout.postmortem.model import Entry

MAX_TEXT = 300  # a summary longer than this is cut: the journal keeps the whole of it


def seconds(value: Any) -> str:
    """``0.453s``, ``75.2s``, ``2m 05s``: short, exact enough for a report."""
    if not isinstance(value, int | float):
        return "?"
    if value < 60:
        return f"{value:.3g}s" if value < 10 else f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m {rest:02d}s"


def _cut(text: Any) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MAX_TEXT else flat[: MAX_TEXT - 1] + "…"


def _scalars(data: dict[str, Any], skip: frozenset[str] = frozenset()) -> str:
    return ", ".join(
        f"{k}={_cut(v)}"
        for k, v in data.items()
        if k not in skip and not isinstance(v, dict | list) and v not in (None, "")
    )


class Namer:
    """Names a step or check by its number and name, as the plan had them."""

    def __init__(self, steps: list[str], checks: list[str]) -> None:
        self.steps, self.checks = steps, checks

    def __call__(self, event: Event) -> str:
        names, what = (self.checks, "check") if event.kind in CHECK_EVENTS else (self.steps, "step")
        if event.step is None:
            return what
        name = names[event.step] if 0 <= event.step < len(names) else "?"
        return f"{what} {event.step + 1} {name!r}"


Texter = Callable[[Event, Namer], str]


def _created(e: Event, n: Namer) -> str:
    d = e.data
    snap = f", baseline snapshot #{d['snapshot_id']}" if d.get("snapshot_id") else ""
    change = f", change {d['change_id']}" if d.get("change_id") else ""
    plan = f"plan {d.get('plan')!r} {d.get('plan_version')}"
    return f"run created by {d.get('actor')} ({plan}{snap}{change})"


def _started(e: Event, n: Namer) -> str:
    ex = e.data.get("executor") or {}
    return (
        f"run started by {e.data.get('actor')} on {ex.get('host', '?')} (pid {ex.get('pid', '?')})"
    )


def _resumed(e: Event, n: Namer) -> str:
    ex = e.data.get("executor") or {}
    decisions = e.data.get("decisions") or {}
    told = f"; decisions {_scalars(decisions)}" if decisions else ""
    return (
        f"run resumed by {e.data.get('actor')} on {ex.get('host', '?')} "
        f"(pid {ex.get('pid', '?')}){told}"
    )


def _step_started(e: Event, n: Namer) -> str:
    return f"{n(e)} started (attempt {e.attempt or 1})"


def _step_process(e: Event, n: Namer) -> str:
    return f"{n(e)} started a program (pid {e.data.get('pid')} on {e.data.get('host')})"


def _retrying(e: Event, n: Namer) -> str:
    delay = e.data.get("delay_s")
    return (
        f"{n(e)} attempt {e.attempt} failed, retrying in {seconds(delay)}: "
        f"{_cut(e.data.get('summary', ''))}"
    )


def _step_finished(e: Event, n: Namer) -> str:
    took = e.data.get("duration_s")
    during = f" in {seconds(took)}" if took is not None else ""
    return f"{n(e)} {e.data.get('outcome')}{during}: {_cut(e.data.get('summary', ''))}"


def _step_skipped(e: Event, n: Namer) -> str:
    return f"{n(e)} skipped: {_cut(e.data.get('reason', ''))}"


def _check_finished(e: Event, n: Namer) -> str:
    verdict = "passed" if e.data.get("passed") else "FAILED"
    tries = int(e.data.get("attempts", 1))
    return f"{n(e)} {verdict} after {tries} attempt(s): {_cut(e.data.get('reason', ''))}"


def _checkpoint_started(e: Event, n: Namer) -> str:
    approve = ", then waits for an approval" if e.data.get("approve") else ""
    return (
        f"checkpoint of stage {int(e.data.get('stage', 0)) + 1} {e.data.get('name')!r}: "
        f"watching for up to {seconds(e.data.get('hold_s', 0))}{approve}"
    )


def _evaluated(e: Event, n: Namer) -> str:
    d = e.data
    return f"trigger {d.get('trigger')!r} → {d.get('verdict')}: {_cut(d.get('summary', ''))}"


def _fired(e: Event, n: Namer) -> str:
    d = e.data
    return (
        f"trigger {d.get('trigger')!r} ({d.get('trigger_kind')}) FIRED: "
        f"{_cut(d.get('summary', ''))}"
    )


def _backout(e: Event, n: Namer) -> str:
    why = e.data.get("trigger")
    return f"backout started after {why!r}" if why else "backout started"


def _finished(e: Event, n: Namer) -> str:
    d = e.data
    result = f" ({d['result']})" if d.get("result") else ""
    return f"run finished {d.get('outcome')}{result}: {_cut(d.get('message', ''))}"


def _other(e: Event, n: Namer) -> str:
    who = f"{n(e)}: " if e.step is not None else ""
    detail = _scalars(e.data, frozenset({"output"}))
    return f"{who}{describe(e.kind)}" + (f" ({detail})" if detail else "")


_TEXTS: dict[str, Texter] = {
    EventKind.RUN_CREATED: _created,
    EventKind.RUN_STARTED: _started,
    EventKind.RUN_RESUMED: _resumed,
    EventKind.STEP_STARTED: _step_started,
    EventKind.STEP_PROCESS: _step_process,
    EventKind.STEP_RETRYING: _retrying,
    EventKind.STEP_FINISHED: _step_finished,
    EventKind.STEP_SKIPPED: _step_skipped,
    EventKind.CHECK_STARTED: lambda e, n: f"{n(e)} started",
    EventKind.CHECK_FINISHED: _check_finished,
    EventKind.CHECKPOINT_STARTED: _checkpoint_started,
    EventKind.TRIGGER_EVALUATED: _evaluated,
    EventKind.TRIGGER_FIRED: _fired,
    EventKind.BACKOUT_STARTED: _backout,
    EventKind.RUN_FINISHED: _finished,
}


def entries(events: list[Event], namer: Namer) -> list[Entry]:
    """One entry per event, in journal order."""
    return [Entry(e.seq, e.at, str(e.kind), _TEXTS.get(e.kind, _other)(e, namer)) for e in events]
