"""What a post-incident report says, as data: gathered from the store by
:mod:`backout.postmortem.gather`, written out by :mod:`backout.postmortem.render`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "backout-report/1"  # names a report's seal, so `--check` knows one when it sees it


@dataclass(frozen=True)
class Seal:
    """What ties a report to the store it was drafted from: the SHA-256 of the run's journal
    (canonical JSON of its rows, in sequence order) and the audit chain's position then."""

    run_id: str
    journal_sha256: str
    journal_events: int
    audit_seq: int | None  # the last audit record about the run (the chain head if none)
    audit_hash: str | None
    generated_at: float
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Entry:
    """One journal event on the timeline."""

    seq: int
    at: float
    kind: str
    text: str


@dataclass(frozen=True)
class StepLine:
    number: int
    name: str
    role: str  # forward (the deploy), reverse (its undo), backout
    status: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    duration_s: float | None
    summary: str
    seqs: list[int] = field(default_factory=list)  # the journal events of this step


@dataclass(frozen=True)
class CheckLine:
    number: int
    name: str
    passed: bool | None
    reason: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    within_s: float  # the plan's window; 0 when the check had one try
    seqs: list[int] = field(default_factory=list)

    @property
    def took_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)


@dataclass(frozen=True)
class Point:
    """One reading of the trigger's signal, as a journal event recorded it."""

    seq: int
    at: float
    value: float
    limit: float | None
    verdict: str


@dataclass(frozen=True)
class Signal:
    """The fired trigger's signal (or the first trigger's, when none fired) over the run."""

    trigger: str
    kind: str
    name: str  # the `telemetry:` signal
    measure: str  # what ``value`` is: "value", "observed rate", "statistic"
    limit_label: str  # "above 0.2", "p_null 0.083", …
    points: list[Point]
    baseline: dict[str, Any] | None  # the snapshot's reading: value, events, trials, at
    counts: dict[str, Any] | None = None  # events/trials at detection, where the source counts


@dataclass(frozen=True)
class Moments:
    """When things happened (epoch seconds), from the journal; None when not recorded."""

    created_at: float
    deploy_at: float | None = None  # the first forward step started
    live_at: float | None = None  # the last forward step before the backout finished
    onset_at: float | None = None  # the signal first out of bounds (a non-pass verdict)
    onset_seq: int | None = None
    detected_at: float | None = None  # trigger_fired
    detected_seq: int | None = None
    backout_at: float | None = None  # backout_started, or the run's start for `backout run`
    restored_at: float | None = None  # run_finished, backed out and verified
    finished_at: float | None = None
    finished_seq: int | None = None


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str
    summary: str
    evidence: dict[str, Any]
    seq: int | None


@dataclass(frozen=True)
class Lesson:
    """A placeholder for people, seeded with a fact the journal shows (``seqs`` cite it)."""

    section: str  # went_well | went_wrong | lucky | action
    text: str
    seqs: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Postmortem:
    run_id: str
    plan: str
    service: str
    environment: str
    mode: str  # backout | deploy | watch | rehearsal
    status: str
    result: str | None
    message: str
    owner: str
    change_id: int | None
    change_title: str | None
    release: str | None
    baseline_release: str | None
    plan_version: str
    authors: list[str]
    in_progress: bool
    outcome: str  # the one-sentence summary
    moments: Moments
    trigger: Trigger | None
    signal: Signal | None
    steps: list[StepLine]
    checks: list[CheckLine]
    rto_s: float | None
    elapsed_s: float | None
    rto_met: bool | None
    resumes: list[int]  # seqs of run_resumed events
    timeline: list[Entry]
    lessons: list[Lesson]
    seal: Seal
    handoffs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
