"""``snapshots``: the baselines recorded for a service, newest first, and one's values."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from backout.commands.caller import Caller
from backout.engine.baseline import TELEMETRY_KEY, template_values
from backout.errors import NotFound
from backout.reports import SnapshotSummary
from backout.store import audit, repo
from backout.store.models import SnapshotRow


def snapshots(caller: Caller, service: str, limit: int = 20) -> list[SnapshotSummary]:
    """The snapshots of ``service``, newest first (the first is what a new run uses); an
    empty list when it has none."""
    with caller.store.session(read_only=True) as session:
        rows = repo.list_snapshots(session, service, limit)
        sources = _sources(session, service)
        return [_summary(row, sources.get(row.id, "")) for row in rows]


def snapshot_show(caller: Caller, service: str, snapshot_id: int) -> SnapshotSummary:
    """One snapshot of ``service`` with its values and telemetry readings."""
    with caller.store.session(read_only=True) as session:
        row = repo.get_snapshot(session, snapshot_id)
        if row is None or row.service != service:
            raise NotFound(
                f"no snapshot #{snapshot_id} of service {service!r}",
                hint=f"list them with `backout snapshots {service}`",
            )
        summary = _summary(row, _sources(session, service).get(row.id, ""))
        return replace(summary, values=template_values(row.values), telemetry=_telemetry(row))


def snapshot_services(caller: Caller) -> list[str]:
    """Every service with a snapshot (to suggest one when a name matches none)."""
    with caller.store.session(read_only=True) as session:
        return repo.snapshot_services(session)


def _summary(row: SnapshotRow, source: str) -> SnapshotSummary:
    return SnapshotSummary(
        snapshot_id=row.id,
        service=row.service,
        plan=row.plan,
        plan_version=row.plan_version,
        taken_at=row.taken_at,
        actor=row.actor,
        source=source or "backout snapshot",
        values_count=len(template_values(row.values)),
        signals=sorted(_telemetry(row)),
    )


def _telemetry(row: SnapshotRow) -> dict[str, dict[str, Any]]:
    """The readings in brief (status, value, events of trials), without the samples."""
    try:
        raw = json.loads(row.values.get(TELEMETRY_KEY, "{}"))
    except ValueError:
        return {}
    return {
        name: {k: reading.get(k) for k in ("status", "value", "events", "trials")}
        for name, reading in raw.items()
        if isinstance(reading, dict)
    }


def _sources(session: Session, service: str) -> dict[int, str]:
    """Which snapshots a promoted deploy took (its audit record names the run)."""
    records = audit.log(session, "snapshot.taken", f"service:{service}", limit=10_000)
    return {
        int(r.details["snapshot_id"]): f"promoted by run {r.details['run_id']}"
        for r in records
        if r.details.get("run_id") and r.details.get("snapshot_id") is not None
    }
