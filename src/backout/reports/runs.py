"""Results of the run verbs: a run's report, its summary line, dry runs, snapshots, the
audit trail and the outbox, interventions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from backout.engine.view import RunView, StepView
from backout.kernel.states import RunStatus, StepStatus
from backout.reports.base import EXIT_CODES, _Record
from backout.store.models import RunRow

NOT_RUN = "not_run"  # a step still pending when its run has finished: it never will run


@dataclass(frozen=True)
class StepReport:
    number: int
    name: str
    status: str  # a step state (backout.kernel.states.StepStatus), or NOT_RUN
    attempts: int
    duration_s: float | None
    summary: str
    output: str = ""


@dataclass(frozen=True)
class CheckReport:
    number: int
    name: str
    passed: bool | None
    reason: str
    attempts: int


@dataclass(frozen=True)
class Handoff:
    """What happened when the backout failed and the plan names disaster recovery: who
    owns it, the runbook, the recovery plan, and whether it was started (``outcome`` says
    why not); the recovery run's id and status when it was."""

    owner: str
    runbook: str | None
    plan: str | None
    started: bool
    outcome: str = ""
    recovery_run: str | None = None
    recovery_status: str | None = None


@dataclass(frozen=True)
class RunReport:
    run_id: str
    plan: str
    service: str
    status: str
    message: str
    actor: str
    plan_version: str
    created_at: float
    finished_at: float | None
    duration_s: float | None
    verified: bool
    result: str | None = None
    trigger: dict[str, Any] | None = None
    steps: list[StepReport] = field(default_factory=list)
    checks: list[CheckReport] = field(default_factory=list)
    handoff: Handoff | None = None

    @property
    def exit_code(self) -> int:
        """0 success (promoted, healthy, backed out by `run`), 1 failed, 3 needs attention,
        4 a deploy or watch that backed out (and verified)."""
        if self.status == RunStatus.SUCCEEDED and self.result == "backed_out":
            return 4
        return EXIT_CODES.get(RunStatus(self.status), 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_report(row: RunRow, view: RunView) -> RunReport:
    started = view.started_at or view.created_at or row.created_at
    duration = round(view.finished_at - started, 3) if view.finished_at else None
    return RunReport(
        run_id=row.id,
        plan=row.plan,
        service=row.service,
        status=view.status.value,
        message=view.message,
        actor=row.actor,
        plan_version=row.plan_version,
        created_at=row.created_at,
        finished_at=view.finished_at,
        duration_s=duration,
        verified=view.verified,
        result=view.result,
        trigger=view.backout_reason,
        steps=[
            StepReport(
                s.index + 1,
                s.name,
                _step_status(view, s),
                s.attempts,
                s.duration_s,
                s.summary,
                s.output,
            )
            for s in view.steps
        ],
        checks=[
            CheckReport(c.index + 1, c.name, c.passed, c.reason, c.attempts) for c in view.checks
        ],
    )


def _step_status(view: RunView, step: StepView) -> str:
    """A finished run's pending steps are ``not_run``: a promoted deploy's undo and backout
    steps, a watch's backout steps, a backed-out deploy's later stages. (Of a run that is
    not finished, pending steps may still run: a resume goes on with them.)"""
    if step.status is StepStatus.PENDING and view.finished_at is not None:
        return NOT_RUN
    return step.status.value


@dataclass(frozen=True)
class SnapshotReport:
    snapshot_id: int
    service: str
    plan: str
    taken_at: float
    values: dict[str, str]
    telemetry: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SnapshotSummary(_Record):
    """One recorded baseline of a service (``backout snapshots``); ``values`` only with
    ``--show`` (stored redacted: secrets never reach the store)."""

    snapshot_id: int
    service: str
    plan: str
    plan_version: str
    taken_at: float
    actor: str
    source: str  # `backout snapshot`, or the deploy run that promoted its release
    values_count: int
    signals: list[str]
    values: dict[str, str] | None = None
    telemetry: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class DryRunStep:
    number: int
    name: str
    action: str
    rendered: Any
    timeout_s: float
    retries: int
    idempotent: bool
    on_failure: str


@dataclass(frozen=True)
class DryRunReport:
    plan: str
    service: str
    snapshot_id: int | None
    baseline: dict[str, str]
    steps: list[DryRunStep]
    checks: list[dict[str, Any]]
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunSummary(_Record):
    """One line of ``backout runs``."""

    run_id: str
    plan: str
    service: str
    status: str
    actor: str
    created_at: float
    finished_at: float | None
    message: str
    plan_version: str

    @classmethod
    def of(cls, row: RunRow) -> RunSummary:
        return cls(
            row.id,
            row.plan,
            row.service,
            row.status,
            row.actor,
            row.created_at,
            row.finished_at,
            row.message,
            row.plan_version,
        )


@dataclass(frozen=True)
class AuditEntry(_Record):
    """One record of the audit chain, with the hashes that link it."""

    seq: int
    at: float
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Checkpoint(_Record):
    """The audit chain's head: keep its hash elsewhere, verify against it later."""

    seq: int
    hash: str
    at: float | None


@dataclass(frozen=True)
class OutboxEntry(_Record):
    """One outbound event and how its delivery went."""

    id: int
    route: str
    stream: str
    key: str
    change_id: int | None
    run_id: str | None
    event: str
    status: str
    attempts: int
    last_error: str
    ref: str | None
    created_at: float
    sent_at: float | None


@dataclass(frozen=True)
class TriggerReceipt(_Record):
    """A person's trigger, queued for the running deploy or watch."""

    run_id: str
    service: str
    inbox_id: int
    reason: str


@dataclass(frozen=True)
class StageApproval(_Record):
    """An approval queued for the checkpoint a deploy waits at (stage counted from 1)."""

    run_id: str
    stage: int
