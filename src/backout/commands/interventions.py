"""A person steps into a live run: a manual trigger, an approval at a checkpoint."""

from __future__ import annotations

from backout.commands.caller import Caller
from backout.engine.queries import waiting_stage, watching_run
from backout.reports import StageApproval, TriggerReceipt
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
