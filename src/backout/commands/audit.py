"""Audit verbs: read the hash-chained log, verify it, take a checkpoint of its head."""

from __future__ import annotations

from backout.commands.caller import Caller
from backout.errors import UsageError
from backout.reports import AuditEntry, Checkpoint
from backout.store import audit


def audit_log(
    caller: Caller,
    action: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    since: float | None = None,
    limit: int = 100,
    *,
    before: int | None = None,
    after: int | None = None,
) -> list[AuditEntry]:
    """Audit records, filtered, oldest first: the newest ``limit``, or a page of them by
    seq: older than ``before``, or the oldest ``limit`` newer than ``after``."""
    with caller.store.session() as session:
        return [
            AuditEntry(
                row.seq,
                row.at,
                row.actor,
                row.action,
                row.subject,
                row.details,
                row.prev_hash,
                row.hash,
            )
            for row in audit.log(session, action, subject, actor, since, limit, before, after)
        ]


def audit_verify(caller: Caller, against: str | None = None) -> audit.Verification:
    """Recompute the chain; with ``against``, also prove it still holds that checkpoint."""
    checkpoint = None if against is None else _checkpoint_hash(against)
    with caller.store.session() as session:
        return audit.verify(session, checkpoint)


def _checkpoint_hash(text: str) -> str:
    """A checkpoint to verify against: an empty or garbled one would prove nothing."""
    value = text.strip().lower()
    if not value:
        raise UsageError(
            "--against is empty: expected a checkpoint hash (64 hex digits)",
            hint="the file or variable it came from is empty; take a checkpoint with "
            "`backout audit checkpoint | cut -d' ' -f1`",
        )
    if not audit.is_hash(value):
        raise UsageError(
            f"--against {text.strip()!r} is not a checkpoint hash: expected 64 hex digits",
            hint="use the first field of `backout audit checkpoint` (its `hash` with --json)",
        )
    return value


def audit_checkpoint(caller: Caller) -> Checkpoint:
    """The chain's head: keep its hash elsewhere, then `audit verify --against HASH`."""
    with caller.store.session() as session:
        head = audit.head(session)
        if head is None:
            return Checkpoint(0, audit.GENESIS, None)
        return Checkpoint(head.seq, head.hash, head.at)
