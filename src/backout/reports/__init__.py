"""Plain data shapes the commands return; the CLI renders them, ``--json`` dumps them."""

from __future__ import annotations

from backout.reports.base import EXIT_CODES, _Record
from backout.reports.changes import (
    ChangeReport,
    ChangeSummary,
    DrillDue,
    GateReport,
    RehearsalReport,
    RehearsalSummary,
)
from backout.reports.people import (
    Acknowledgement,
    ChannelTest,
    IncidentReport,
    IncidentUpdateEntry,
    NotifyTestReport,
    StatusPageReport,
    StatusUpdate,
)
from backout.reports.runs import (
    AuditEntry,
    Checkpoint,
    CheckReport,
    DryRunReport,
    DryRunStep,
    Handoff,
    OutboxEntry,
    RunReport,
    RunSummary,
    SnapshotReport,
    SnapshotSummary,
    StageApproval,
    StepReport,
    TriggerReceipt,
    run_report,
)
from backout.reports.tokens import CreatedToken, TokenSummary

__all__ = [
    "EXIT_CODES",
    "Acknowledgement",
    "AuditEntry",
    "ChangeReport",
    "ChangeSummary",
    "ChannelTest",
    "CheckReport",
    "Checkpoint",
    "CreatedToken",
    "DrillDue",
    "DryRunReport",
    "DryRunStep",
    "GateReport",
    "Handoff",
    "IncidentReport",
    "IncidentUpdateEntry",
    "NotifyTestReport",
    "OutboxEntry",
    "RehearsalReport",
    "RehearsalSummary",
    "RunReport",
    "RunSummary",
    "SnapshotReport",
    "SnapshotSummary",
    "StageApproval",
    "StatusPageReport",
    "StatusUpdate",
    "StepReport",
    "TokenSummary",
    "TriggerReceipt",
    "_Record",
    "run_report",
]
