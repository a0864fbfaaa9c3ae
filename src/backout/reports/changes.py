"""Results of the change verbs: change records, the gate, rehearsals and drills due."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from backout.changes.gate_checks import GateCheck, junit_xml
from backout.kernel.states import RunStatus
from backout.reports.base import _Record
from backout.reports.runs import RunReport


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
    rehearsals_total: int = 0  # the plan's drills in all (``rehearsals`` holds the newest)

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
