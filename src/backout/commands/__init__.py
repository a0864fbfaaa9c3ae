"""The verbs: plain functions, each taking a :class:`Caller` (an open store and who acts)
and returning a typed result from :mod:`backout.reports` — alembic's ``command`` module is
the model. The CLI (and a server) make the caller at the edge and render the result;
nothing here prints or reads settings.

Run verbs are here at the top; change and flag verbs are namespaced, as the CLI groups
them: ``commands.changes.approve``, ``commands.flags.set_flag``.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backout.commands import changes, flags
    from backout.commands.audit import audit_checkpoint, audit_log, audit_verify
    from backout.commands.baseline import snapshot
    from backout.commands.caller import Caller
    from backout.commands.enqueue import enqueue
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
    from backout.commands.tokens import authenticate, create_token, list_tokens, revoke_token

# name -> (module, attribute; None: the module itself). Each verb's module loads when the
# verb is first used, so a command that needs one verb does not import them all.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Caller": ("backout.commands.caller", "Caller"),
    "abandon": ("backout.commands.interventions", "abandon"),
    "ack": ("backout.commands.notify", "ack"),
    "approve": ("backout.commands.interventions", "approve"),
    "audit_checkpoint": ("backout.commands.audit", "audit_checkpoint"),
    "audit_log": ("backout.commands.audit", "audit_log"),
    "audit_verify": ("backout.commands.audit", "audit_verify"),
    "authenticate": ("backout.commands.tokens", "authenticate"),
    "changes": ("backout.commands.changes", None),
    "create_token": ("backout.commands.tokens", "create_token"),
    "deploy": ("backout.commands.runs", "deploy"),
    "drill_of": ("backout.commands.rehearsals", "drill_of"),
    "drills_due": ("backout.commands.rehearsals", "drills_due"),
    "dry_run": ("backout.commands.plans", "dry_run"),
    "enqueue": ("backout.commands.enqueue", "enqueue"),
    "explain_run": ("backout.commands.runs", "explain_run"),
    "flags": ("backout.commands.flags", None),
    "follow": ("backout.commands.follow", "follow"),
    "follow_progress": ("backout.commands.follow", "follow_progress"),
    "incident_update": ("backout.commands.incidents", "incident_update"),
    "incidents": ("backout.commands.incidents", "incidents"),
    "init": ("backout.commands.plans", "init"),
    "journal": ("backout.commands.runs", "journal"),
    "list_tokens": ("backout.commands.tokens", "list_tokens"),
    "looks_like_policy": ("backout.commands.policy", "looks_like_policy"),
    "metrics": ("backout.commands.metrics", "metrics"),
    "notify_send": ("backout.commands.notify", "notify_send"),
    "notify_test": ("backout.commands.notify", "notify_test"),
    "notify_update": ("backout.commands.notify", "notify_update"),
    "outbox_list": ("backout.commands.outbox", "outbox_list"),
    "outbox_retry": ("backout.commands.outbox", "outbox_retry"),
    "outbox_send": ("backout.commands.outbox", "outbox_send"),
    "policy_file_in_effect": ("backout.commands.policy", "policy_file_in_effect"),
    "preflight": ("backout.commands.preflight", "preflight"),
    "receive_pagerduty": ("backout.commands.receive", "receive_pagerduty"),
    "rehearsal_fault": ("backout.commands.rehearsals", "parse_fault"),
    "rehearsals": ("backout.commands.rehearsals", "rehearsals"),
    "rehearse": ("backout.commands.rehearsals", "rehearse"),
    "report": ("backout.commands.report", "report"),
    "report_check": ("backout.commands.report", "report_check"),
    "report_draft": ("backout.commands.report", "report_draft"),
    "report_share": ("backout.commands.report", "report_share"),
    "resume": ("backout.commands.runs", "resume"),
    "revoke_token": ("backout.commands.tokens", "revoke_token"),
    "run": ("backout.commands.runs", "run"),
    "runs": ("backout.commands.runs", "runs"),
    "schema": ("backout.commands.plans", "schema"),
    "show": ("backout.commands.plans", "show"),
    "snapshot": ("backout.commands.baseline", "snapshot"),
    "snapshot_services": ("backout.commands.snapshots", "snapshot_services"),
    "snapshot_show": ("backout.commands.snapshots", "snapshot_show"),
    "snapshots": ("backout.commands.snapshots", "snapshots"),
    "status": ("backout.commands.runs", "status"),
    "status_page_build": ("backout.commands.incidents", "status_page_build"),
    "trigger": ("backout.commands.interventions", "trigger"),
    "validate": ("backout.commands.plans", "validate"),
    "validate_policy": ("backout.commands.policy", "validate_policy"),
    "watch": ("backout.commands.runs", "watch"),
    "webhook_secrets": ("backout.commands.receive", "webhook_secrets"),
    "work": ("backout.commands.runs", "work"),
}


class _Verbs(ModuleType):
    """This package, where a verb keeps its name when its module has the same one
    (``report``, ``runs``, ``metrics`` …): importing ``backout.commands.report`` would
    otherwise bind the module over the verb (as importing them all at once never did)."""

    def __setattr__(self, name: str, value: Any) -> None:
        verb = _LAZY.get(name)
        if isinstance(value, ModuleType) and verb is not None and verb[1] is not None:
            return  # the verb is found by __getattr__, from the module just imported
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Verbs


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'backout.commands' has no attribute {name!r}")
    module = import_module(where[0])
    value = module if where[1] is None else getattr(module, where[1])
    globals()[name] = value  # once loaded, a plain attribute
    return value


__all__ = [
    "Caller",
    "abandon",
    "ack",
    "approve",
    "audit_checkpoint",
    "audit_log",
    "audit_verify",
    "authenticate",
    "changes",
    "create_token",
    "deploy",
    "drill_of",
    "drills_due",
    "dry_run",
    "enqueue",
    "explain_run",
    "flags",
    "follow",
    "follow_progress",
    "incident_update",
    "incidents",
    "init",
    "journal",
    "list_tokens",
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
    "revoke_token",
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
