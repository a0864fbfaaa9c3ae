"""The verbs: plain functions, each taking a :class:`Caller` (an open store and who acts)
and returning a typed result from :mod:`backout.reports` — alembic's ``command`` module is
the model. The CLI (and a server) make the caller at the edge and render the result;
nothing here prints or reads settings.

Run verbs are here at the top; change and flag verbs are namespaced, as the CLI groups
them: ``commands.changes.approve``, ``commands.flags.set_flag``.
"""

from __future__ import annotations

from backout.commands import changes, flags
from backout.commands.audit import audit_checkpoint, audit_log, audit_verify
from backout.commands.baseline import snapshot
from backout.commands.caller import Caller
from backout.commands.follow import follow, follow_progress
from backout.commands.incidents import incident_update, incidents, status_page_build
from backout.commands.interventions import abandon, approve, trigger
from backout.commands.metrics import metrics
from backout.commands.notify import ack, notify_send, notify_test, notify_update
from backout.commands.outbox import outbox_list, outbox_retry, outbox_send
from backout.commands.plans import dry_run, init, schema, show, validate
from backout.commands.policy import looks_like_policy, policy_file_in_effect, validate_policy
from backout.commands.preflight import preflight
from backout.commands.receive import receive_pagerduty, webhook_secrets
from backout.commands.rehearsals import drill_of, drills_due, rehearsals, rehearse
from backout.commands.rehearsals import parse_fault as rehearsal_fault
from backout.commands.report import report, report_check, report_draft, report_share
from backout.commands.runs import (
    deploy,
    explain_run,
    journal,
    resume,
    run,
    runs,
    status,
    watch,
    work,
)
from backout.commands.snapshots import snapshot_services, snapshot_show, snapshots

__all__ = [
    "Caller",
    "abandon",
    "ack",
    "approve",
    "audit_checkpoint",
    "audit_log",
    "audit_verify",
    "changes",
    "deploy",
    "drill_of",
    "drills_due",
    "dry_run",
    "explain_run",
    "flags",
    "follow",
    "follow_progress",
    "incident_update",
    "incidents",
    "init",
    "journal",
    "looks_like_policy",
    "metrics",
    "notify_send",
    "notify_test",
    "notify_update",
    "outbox_list",
    "outbox_retry",
    "outbox_send",
    "policy_file_in_effect",
    "preflight",
    "receive_pagerduty",
    "rehearsal_fault",
    "rehearsals",
    "rehearse",
    "report",
    "report_check",
    "report_draft",
    "report_share",
    "resume",
    "run",
    "runs",
    "schema",
    "show",
    "snapshot",
    "snapshot_services",
    "snapshot_show",
    "snapshots",
    "status",
    "status_page_build",
    "trigger",
    "validate",
    "validate_policy",
    "watch",
    "webhook_secrets",
    "work",
]
