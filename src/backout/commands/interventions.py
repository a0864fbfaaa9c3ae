"""A person steps into a live run: a manual trigger, an approval at a checkpoint, giving up
on a run that needs attention."""

from __future__ import annotations

from backout.commands.caller import Caller
from backout.engine.abandon import abandon as abandon_run
from backout.engine.queries import waiting_stage, watching_run
from backout.reports import RunReport, StageApproval, TriggerReceipt, run_report
from backout.store import audit, inbox, repo


def trigger(caller: Caller, service: str, reason: str) -> TriggerReceipt:
    """A person's call: the running deploy or watch of SERVICE backs out at its next tick."""
    with caller.store.session() as session:
        row = watching_run(session, service)
        entry = inbox.put(session, service, "manual", reason, caller.actor, {}, row.id)
        audit.append(
            session,
            caller.actor,
            "trigger.manual",
            f"run:{row.id}",
            {"service": service, "reason": reason},
        )
        return TriggerReceipt(row.id, service, entry.id, reason)


def approve(caller: Caller, run_id: str, comment: str = "") -> StageApproval:
    """Approve the checkpoint a deploy is waiting at."""
    with caller.store.session() as session:
        row = repo.get_run(session, run_id)
        stage = waiting_stage(repo.load_events(session, row.id), row.id)
        inbox.put(session, row.service, "approve", comment, caller.actor, {"stage": stage}, row.id)
        audit.append(
            session,
            caller.actor,
            "run.approve",
            f"run:{row.id}",
            {"stage": stage + 1, "comment": comment},
        )
        return StageApproval(row.id, stage + 1)


def abandon(caller: Caller, run_id: str, reason: str) -> RunReport:
    """Give up on a run that needs attention: it ends ``failed`` (result ``abandoned``),
    journalled and audited with ``reason``, and no longer holds its service."""
    with caller.store.session(read_only=True) as session:
        row = repo.get_run(session, run_id)
    view = abandon_run(caller.store, row, caller.actor, reason, caller.lease_ttl)
    return run_report(row, view)
