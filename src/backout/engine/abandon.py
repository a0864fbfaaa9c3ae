"""Abandoning a run that needs attention: a person decides it will not be resumed.

The run ends ``failed`` (``result: abandoned``) through one journalled ``run_abandoned``
event, with the run's own hooks (audit, its change record, its outbox routes), so nothing
else needs to know about it: the service is free for a new run, workers never resume a
failed run, and escalation stops chasing it. The service's lease is taken for the moment
of the write, so an executor resuming the run at the same time is refused, not raced.
"""

from __future__ import annotations

from backout.engine.journal import Journal
from backout.engine.lease import claim_for_resume
from backout.engine.runner import Execution, empty_view, plan_of, run_hooks
from backout.engine.view import RunView, fold
from backout.errors import Conflict, UsageError
from backout.kernel.events import EventKind
from backout.kernel.states import RunStatus
from backout.redact import Redactor
from backout.store import leases, repo
from backout.store.db import Store
from backout.store.models import RunRow


def abandon(store: Store, row: RunRow, actor: str, reason: str, lease_ttl: float) -> RunView:
    """Journal that ``actor`` abandoned the run for ``reason``; return its final view."""
    if not reason.strip():
        raise UsageError(
            "abandoning a run needs a reason",
            run_id=row.id,
            hint='say why with --reason "…" (it is kept in the journal and the audit trail)',
        )
    plan, _ = plan_of(row)
    with store.session() as session:
        refuse_unless_waiting(fold(empty_view(row, plan), repo.load_events(session, row.id)))
    owner = leases.new_owner()
    with store.session() as session:
        claim_for_resume(session, row.service, row.id, owner, lease_ttl)
    try:
        ex = Execution(store, row, plan, owner, actor, lease_ttl)
        # the reason is the person's own words; there is no secret of the plan to redact
        journal = Journal.open(store, empty_view(row, plan), Redactor(), hooks=run_hooks(ex))
        refuse_unless_waiting(journal.view)
        journal.append(
            EventKind.RUN_ABANDONED,
            by=actor,
            reason=reason.strip(),
            message=f"abandoned by {actor}: {reason.strip()}",
        )
    finally:
        with store.session() as session:
            leases.release(session, row.service, owner)
    return journal.view


def refuse_unless_waiting(view: RunView) -> None:
    """Only a run that needs attention may be abandoned; say what to do with any other."""
    if view.status is RunStatus.NEEDS_ATTENTION:
        return
    what = {
        RunStatus.PENDING: "it has not started; let it run, or stop its executor and resume",
        RunStatus.RUNNING: "it is running (or was interrupted): stop it with Ctrl-C or SIGTERM, "
        f"then `backout resume {view.run_id}`; abandon only a run that needs attention",
        RunStatus.SUCCEEDED: "it has finished; nothing holds the service",
        RunStatus.FAILED: "it has finished; nothing holds the service",
    }[view.status]
    raise Conflict(f"run {view.run_id} is {view.status}, not needs_attention: {what}")
