"""Flag rows in the backout store. Every change appends an audit record in the same
transaction, so a flag never changes without a trace."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from backout.flags.model import FlagChange, FlagState, check_key
from backout.store import audit
from backout.store.models import FlagRow

AUDIT_ACTION = "flag.set"


@dataclass(frozen=True)
class FlagUpdate:
    before: FlagState | None  # None: the flag did not exist
    after: FlagState


def state_of(row: FlagRow) -> FlagState:
    return FlagState(
        key=row.key,
        enabled=row.enabled,
        percentage=row.percentage,
        variants=dict(row.variants),
        on_variant=row.on_variant,
        off_variant=row.off_variant,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def get(session: Session, key: str) -> FlagState | None:
    row = session.get(FlagRow, key)
    return state_of(row) if row else None


def all_flags(session: Session) -> list[FlagState]:
    return [state_of(row) for row in session.scalars(select(FlagRow).order_by(FlagRow.key))]


def put(session: Session, key: str, change: FlagChange, actor: str, source: str) -> FlagUpdate:
    """Apply ``change`` (creating the flag if needed) and audit it as ``flag.set``."""
    check_key(key)
    row = session.scalars(select(FlagRow).where(FlagRow.key == key).with_for_update()).first()
    before = state_of(row) if row else None
    now = time.time()
    after = replace(
        change.applied_to(before or FlagState(key)),
        version=(before.version if before else 0) + 1,
        updated_at=now,
        updated_by=actor,
    )
    if row is None:
        row = FlagRow(key=key, created_at=now)
        session.add(row)
    for name, value in after.settings().items():
        setattr(row, name, value)
    row.version, row.updated_at, row.updated_by = after.version, now, actor
    audit.append(
        session,
        actor,
        AUDIT_ACTION,
        f"flag:{key}",
        {
            "source": source,
            "before": before.settings() if before else None,
            "after": after.settings(),
            "version": after.version,
        },
    )
    return FlagUpdate(before, after)
