"""The parts of a report that are sentences: the outcome in one, and the lessons and action
items, seeded with what the journal shows and left for people to finish."""

from __future__ import annotations

from dataclasses import replace

from backout.kernel.events import Event, EventKind
from backout.postmortem.model import Lesson, Postmortem
from backout.postmortem.timeline import seconds

_WHAT = {
    "deploy": "A deploy",
    "watch": "A watch",
    "rehearsal": "A rehearsal",
    "backout": "A backout",
}


def told(pm: Postmortem, events: list[Event]) -> Postmortem:
    return replace(pm, outcome=outcome(pm), lessons=lessons(pm, events))


def _subject(pm: Postmortem) -> str:
    what = _WHAT.get(pm.mode, "A run")
    release = f" of release {pm.release}" if pm.release else ""
    where = f" in {pm.environment}" if pm.environment else ""
    return f"{what}{release} of {pm.service}{where}"


def _rto(pm: Postmortem) -> str:
    if pm.elapsed_s is None:
        return ""
    budget = f" against an RTO of {seconds(pm.rto_s)}" if pm.rto_s is not None else ""
    return f" in {seconds(pm.elapsed_s)}{budget}"


def outcome(pm: Postmortem) -> str:
    """What happened, in one sentence."""
    subject = _subject(pm)
    why = f" after trigger {pm.trigger.name!r} fired" if pm.trigger else ""
    if pm.in_progress:
        state = "needs attention" if pm.status == "needs_attention" else "is still in progress"
        return f"{subject} {state} (status {pm.status}): this draft will change."
    if pm.status == "failed":
        return f"{subject} was being backed out{why}, and the backout FAILED: {pm.message}"
    if pm.result == "promoted":
        return f"{subject} passed every checkpoint and was promoted; nothing was backed out."
    if pm.result == "healthy":
        return f"{subject} ended with the release healthy; nothing was backed out."
    verified = "verified" if pm.checks and all(c.passed for c in pm.checks) else "not verified"
    if pm.mode == "backout":  # a backout started by hand (or by `backout trigger`) backs out
        where = f" in {pm.environment}" if pm.environment else ""
        by = why or " by hand"
        return (
            f"{pm.service}{where} was backed out{by}; the backout finished and was "
            f"{verified}{_rto(pm)}."
        )
    return f"{subject} was backed out{why}; the backout finished and was {verified}{_rto(pm)}."


def lessons(pm: Postmortem, events: list[Event]) -> list[Lesson]:
    return [*_well(pm), *_wrong(pm, events), *_lucky(pm, events), *_actions(pm)]


def _well(pm: Postmortem) -> list[Lesson]:
    found: list[Lesson] = []
    m = pm.moments
    if m.detected_at is not None and m.live_at is not None and m.detected_seq is not None:
        found.append(
            Lesson(
                "went_well",
                f"the trigger {pm.trigger.name if pm.trigger else '?'!r} detected the fault "
                f"{seconds(m.detected_at - m.live_at)} after the release went live",
                [m.detected_seq],
            )
        )
    if pm.rto_met and m.finished_seq is not None:
        found.append(
            Lesson(
                "went_well",
                f"the backout took {seconds(pm.elapsed_s)}, within its RTO of {seconds(pm.rto_s)}",
                [m.finished_seq],
            )
        )
    passed = [c for c in pm.checks if c.passed]
    if passed and len(passed) == len(pm.checks):
        found.append(
            Lesson(
                "went_well",
                f"all {len(passed)} verify check(s) passed",
                [c.seqs[-1] for c in passed if c.seqs],
            )
        )
    return found


def _wrong(pm: Postmortem, events: list[Event]) -> list[Lesson]:
    found = [
        Lesson("went_wrong", f"step {s.number} {s.name!r} failed: {s.summary}", s.seqs[-1:])
        for s in pm.steps
        if s.status == "failed"
    ]
    found += [
        Lesson("went_wrong", f"verify check {c.number} {c.name!r} failed: {c.reason}", c.seqs[-1:])
        for c in pm.checks
        if c.passed is False
    ]
    if pm.rto_met is False and pm.moments.finished_seq is not None:
        found.append(
            Lesson(
                "went_wrong",
                f"the backout took {seconds(pm.elapsed_s)}, over its RTO of {seconds(pm.rto_s)}",
                [pm.moments.finished_seq],
            )
        )
    if pm.status == "failed" and pm.moments.finished_seq is not None:
        found.append(
            Lesson("went_wrong", f"the backout failed: {pm.message}", [pm.moments.finished_seq])
        )
    for e in events:
        if e.kind in (EventKind.RUN_NEEDS_ATTENTION, EventKind.RUN_STOPPED):
            found.append(
                Lesson("went_wrong", f"the run stopped: {e.data.get('message', '')}", [e.seq])
            )
    return found


def _lucky(pm: Postmortem, events: list[Event]) -> list[Lesson]:
    found = [
        Lesson(
            "lucky",
            f"step {s.number} {s.name!r} needed {s.attempts} attempts before it {s.status}",
            [e.seq for e in events if e.kind == EventKind.STEP_RETRYING and e.step == s.number - 1],
        )
        for s in pm.steps
        if s.attempts > 1 and s.status == "succeeded"
    ]
    found += [
        Lesson(
            "lucky",
            f"verify check {c.number} {c.name!r} passed only after {c.attempts} attempts "
            f"(it took {seconds(c.took_s)} of its within: window of {seconds(c.within_s)})",
            c.seqs,
        )
        for c in pm.checks
        if c.passed and c.attempts > 1
    ]
    found += [
        Lesson(
            "lucky",
            f"the run was interrupted and resumed by {e.data.get('actor')}; finished steps "
            "were not run again",
            [e.seq],
        )
        for e in events
        if e.kind == EventKind.RUN_RESUMED
    ]
    return found


def _actions(pm: Postmortem) -> list[Lesson]:
    found = [
        Lesson(
            "action",
            f"find the root cause of the fault that "
            f"{'fired ' + repr(pm.trigger.name) if pm.trigger else 'started the backout'}",
            [pm.trigger.seq] if pm.trigger and pm.trigger.seq else [],
        )
    ]
    found += [
        Lesson("action", f"find why step {s.number} {s.name!r} failed on its first attempt", s.seqs)
        for s in pm.steps
        if s.attempts > 1 or s.status == "failed"
    ]
    if pm.rto_met is False and pm.moments.finished_seq is not None:
        found.append(
            Lesson(
                "action",
                "shorten the backout or revisit the plan's rto:",
                [pm.moments.finished_seq],
            )
        )
    if pm.resumes:
        found.append(
            Lesson("action", "find why the run's executor stopped before the end", pm.resumes)
        )
    return found
