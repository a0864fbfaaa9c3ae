"""Plain data shapes the commands return; the CLI renders them, ``--json`` dumps them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

from backout.changes.gate import GateCheck, junit_xml
from backout.engine.view import RunView
from backout.kernel.states import RunStatus
from backout.store.models import RunRow

# a run still pending or running is not a failure: `status` of a live run exits 0
EXIT_CODES = {
    RunStatus.PENDING: 0,
    RunStatus.RUNNING: 0,
    RunStatus.SUCCEEDED: 0,
    RunStatus.FAILED: 1,
    RunStatus.NEEDS_ATTENTION: 3,
}


@dataclass(frozen=True)
class StepReport:
    number: int
    name: str
    status: str
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
                s.index + 1, s.name, s.status.value, s.attempts, s.duration_s, s.summary, s.output
            )
            for s in view.steps
        ],
        checks=[
            CheckReport(c.index + 1, c.name, c.passed, c.reason, c.attempts) for c in view.checks
        ],
    )


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


class _Record:
    """A typed result whose JSON is its fields (``--json`` and the API print this)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(cast(Any, self))


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
class ChannelTest(_Record):
    """How the test message to one channel went."""

    channel: str
    kind: str
    ok: bool
    error: str
    outbox_id: int


@dataclass(frozen=True)
class NotifyTestReport(_Record):
    """What `backout notify test` did, channel by channel."""

    plan: str
    results: list[ChannelTest]

    @property
    def exit_code(self) -> int:
        """0 when every channel took its message, 1 otherwise."""
        return 0 if all(r.ok for r in self.results) else 1


@dataclass(frozen=True)
class Acknowledgement(_Record):
    """`backout ack`: who took the run, when, what it waited for, who was told."""

    run_id: str
    actor: str
    at: float
    waiting_for: str
    told: list[str]
    audit_seq: int


@dataclass(frozen=True)
class StatusUpdate(_Record):
    """`backout notify update`: a person's status update, and who was told. For the run's
    first update, ``first_update_s`` is how long after the incident began it came."""

    run_id: str
    actor: str
    at: float
    message: str
    told: list[str]
    audit_seq: int
    first_update_s: float | None


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


@dataclass(frozen=True)
class ChangeReport:
    id: int
    title: str
    status: str
    plan: str
    plan_file: str
    plan_version: str
    plan_version_now: str | None
    service: str
    risk: str
    risk_computed: str
    risk_reasons: list[str]
    window: str | None
    ref: str | None
    requester: str
    created_at: float
    updated_at: float
    approvals: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rehearsals: list[dict[str, Any]] = field(default_factory=list)  # its plan's, newest first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    change_id: int
    risk: str
    policy: str
    passed: bool
    checks: list[GateCheck]

    @property
    def exit_code(self) -> int:
        """0 when every check passes, 1 when the change may not start."""
        return 0 if self.passed else 1

    def junit_xml(self) -> str:
        """The gate as a JUnit report: one test case per policy check (for CI)."""
        return junit_xml(self.change_id, self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "risk": self.risk,
            "policy": self.policy,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True)
class ChangeSummary(_Record):
    """One line of ``backout changes``."""

    id: int
    title: str
    status: str
    plan: str
    service: str
    risk: str
    risk_computed: str
    requester: str
    ref: str | None
    plan_version: str
    window: str | None
    window_start: float | None
    window_end: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class RehearsalReport(_Record):
    """One drill: its run, the verdict, the phase timings against the rto, the faults."""

    rehearsal_id: int | None
    plan: str
    plan_version: str
    passed: bool
    message: str
    phases: dict[str, Any]
    steady: dict[str, bool]
    faults: list[dict[str, Any]]
    journal_hash: str | None
    rto_s: float | None
    run: RunReport

    @property
    def fits_rto(self) -> bool | None:
        total = self.phases.get("total_s")
        if self.rto_s is None or total is None:
            return None
        return bool(total <= self.rto_s)

    @property
    def exit_code(self) -> int:
        """0 passed within the rto, 1 failed or over the rto, 3 the drill's run needs an
        operator (resume it), 128 + signal for a drill stopped (and its break reverted)."""
        if self.run.status == RunStatus.NEEDS_ATTENTION:
            return 3
        if self.phases.get("result") == "stopped" and self.phases.get("signal"):
            return 128 + int(self.phases["signal"])
        return 0 if self.passed and self.fits_rto is not False else 1

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "fits_rto": self.fits_rto}


@dataclass(frozen=True)
class RehearsalSummary(_Record):
    """One line of ``backout rehearsals``."""

    id: int
    plan: str
    plan_version: str
    service: str | None
    environment: str | None
    outcome: str
    total_s: float
    at: float
    actor: str | None
    run_id: str | None
    message: str


@dataclass(frozen=True)
class DrillDue(_Record):
    """One plan in ``backout drills due``: whether the gate would refuse its rehearsal."""

    plan: str
    file: str
    version: str
    risk: str
    required: bool
    due: bool
    reason: str
    slower: str | None

    @property
    def exit_code(self) -> int:
        return 1 if self.due else 0


@dataclass(frozen=True)
class IncidentUpdateEntry(_Record):
    """One move of an incident (``internal``: never published)."""

    id: int
    status: str
    component_status: str
    message: str
    actor: str
    at: float
    internal: bool


@dataclass(frozen=True)
class IncidentReport(_Record):
    """An incident on the status page, with its updates oldest first."""

    id: int
    service: str
    component: str
    title: str
    status: str
    impact: str
    run_id: str | None
    internal: bool
    created_at: float
    updated_at: float
    resolved_at: float | None
    updates: list[IncidentUpdateEntry]


@dataclass(frozen=True)
class StatusPageReport(_Record):
    """What ``backout status-page build`` wrote, and what the visibility guard withheld."""

    out_dir: str
    files: list[str]
    indicator: str
    description: str
    components: int
    open_incidents: int
    resolved_incidents: int
    withheld: dict[str, int]
    resolved_now: list[int]
