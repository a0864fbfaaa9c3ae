"""Create a run: check what it needs, claim the service, write the first journal event —
all in one transaction, so a refused run leaves nothing behind."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy.orm import Session

from backout.changes.events import move
from backout.changes.lifecycle import ChangeStatus
from backout.engine.lease import claim_for_new_run
from backout.errors import UsageError
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.spec.loader import LoadedPlan
from backout.spec.secrets import resolve_secrets
from backout.spec.templating import references, walk_strings
from backout.store import audit, leases, notices, repo
from backout.store import changes as change_repo
from backout.store.db import Store
from backout.store.models import RunRow, SnapshotRow


def baseline_keys_used(loaded: LoadedPlan) -> set[str]:
    keys: set[str] = set()
    for item in [*loaded.plan.steps, *loaded.plan.verify]:
        for _, text in walk_strings(item.options):
            keys |= references(text)[1]
    return keys


def check_baseline(loaded: LoadedPlan, snapshot: SnapshotRow | None) -> None:
    needed = baseline_keys_used(loaded)
    if not needed:
        return
    service = loaded.plan.service_name
    if snapshot is None:
        raise UsageError(
            f"no baseline snapshot for service {service!r}; the plan uses "
            f"{', '.join(f'baseline.{k}' for k in sorted(needed))}",
            hint=f"run `backout snapshot {loaded.shown}` while the good release is live",
        )
    missing = needed - set(snapshot.values)
    if missing:
        raise UsageError(
            f"the latest snapshot of {service!r} (#{snapshot.id}) lacks "
            f"{', '.join(sorted(missing))}",
            hint="take a new snapshot with `backout snapshot`",
        )


def link_change(
    session: Session, change_id: int, loaded: LoadedPlan, run_id: str, actor: str
) -> None:
    """A run for a change: the change must be approved (it moves to in_progress) or already
    in progress, and be about this plan."""
    change = change_repo.get_change(session, change_id, lock=True)
    if change.plan != loaded.plan.plan:
        raise UsageError(
            f"change {change_id} is for plan {change.plan!r}, not {loaded.plan.plan!r}",
            hint="pass the change's own plan file",
        )
    status = ChangeStatus(change.status)
    if status is ChangeStatus.APPROVED:
        move(session, change, actor, ChangeStatus.IN_PROGRESS, {"run_id": run_id})
    elif status is not ChangeStatus.IN_PROGRESS:
        raise UsageError(
            f"change {change_id} is {status}; a run needs it approved or in progress",
            hint=f"see `backout change show {change_id}`",
        )


def create_run(
    store: Store,
    loaded: LoadedPlan,
    actor: str,
    owner: str,
    lease_ttl: float,
    change_id: int | None = None,
    extra: dict[str, Any] | None = None,
    *,
    for_worker: bool = False,
) -> RunRow:
    """Create the run, its service claimed for ``owner``. ``for_worker``: the claim is
    handed back in the same transaction, so the pending run waits for a worker (its
    doorbell rings at commit); a refused run leaves nothing behind either way."""
    plan = loaded.plan
    resolve_secrets(plan, loaded.base_dir)  # refuse now rather than fail mid-backout
    now = time.time()
    run_id = uuid.uuid4().hex[:12]
    service = plan.service_key((extra or {}).get("environment"))
    with store.session() as session:
        snapshot = repo.latest_snapshot(session, service, before=now)
        check_baseline(loaded, snapshot)
        claim_for_new_run(session, service, run_id, owner, lease_ttl)
        if change_id is not None:
            link_change(session, change_id, loaded, run_id, actor)
        row = RunRow(
            id=run_id,
            plan=plan.plan,
            service=service,
            plan_file=str(loaded.path),
            plan_version=loaded.version,
            status=RunStatus.PENDING.value,
            mode=_mode(extra),
            actor=actor,
            plan_doc={
                "plan": plan.model_dump(mode="json"),
                "base_dir": str(loaded.base_dir),
                **(extra or {}),
            },
            snapshot_id=snapshot.id if snapshot else None,
            created_at=now,
            message="",
            change_id=change_id,
        )
        session.add(row)
        session.flush()
        data = {
            "plan": plan.plan,
            "plan_file": str(loaded.path),
            "plan_version": loaded.version,
            "snapshot_id": row.snapshot_id,
            "actor": actor,
            "change_id": change_id,
        }
        if (extra or {}).get("reason"):
            data["reason"] = (extra or {})["reason"]
        repo.append_event(
            session,
            Event(run_id, 1, now, EventKind.RUN_CREATED, data=data),
            RunStatus.PENDING,
            "",
            None,
        )
        notices.notify(session, notices.JOURNAL, run_id)  # live event streams look at once
        audit.append(session, actor, "run.started", f"run:{run_id}", data)
        if for_worker:
            leases.release(session, service, owner)
    return row


def _mode(extra: dict[str, Any] | None) -> str:
    mode = (extra or {}).get("mode")
    return mode if mode in ("deploy", "watch", "rehearsal") else "backout"
