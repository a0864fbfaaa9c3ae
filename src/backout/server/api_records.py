"""``/api/v1/snapshots`` and ``/api/v1/services``: the baselines recorded for each service
(as ``backout snapshots SERVICE [--show ID]``), and taking one (as ``backout snapshot``)
of a plan the server offers (``backout server --plans DIR``): a request names the plan,
never sends it.

:func:`install` adds these routes and those of :mod:`.api_flags` and :mod:`.api_audit`.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, Field

from backout import commands
from backout.commands.caller import Caller
from backout.errors import NotFound, UsageError
from backout.kernel.roles import Permission
from backout.server import api_audit, api_flags
from backout.server.auth import Gate, needs
from backout.server.plan_folder import PlanFolder
from backout.server.routes import API
from backout.store.models import SnapshotRow

MAX_LIMIT = 1000


class SnapshotRequest(BaseModel):
    """A snapshot to take, of one of the server's plans."""

    plan: str = Field(
        min_length=1, max_length=200, description="The plan's name in the server's plan folder."
    )
    environment: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The environment, when the plan declares environments (`--env`).",
    )
    telemetry_window: float = Field(
        5.0, gt=0, le=300, description="Seconds to read the plan's telemetry signals for."
    )


def snapshots(gate: Gate, folder: PlanFolder) -> APIRouter:
    router = APIRouter(prefix=API, tags=["snapshots"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.get("/services", summary="The services that have snapshots, sorted")
    def services(caller: reader) -> list[str]:
        return commands.snapshot_services(caller)

    @router.get(
        "/snapshots",
        summary="A service's snapshots, newest first (as `backout snapshots SERVICE --json`)",
    )
    def list_snapshots(
        caller: reader,
        service: Annotated[
            str | None, Query(max_length=200, description="The service (SERVICE@ENV): required")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description="At most this many (the newest)")
        ] = 20,
    ) -> list[dict[str, Any]]:
        if not service:
            known = ", ".join(commands.snapshot_services(caller)) or "none yet"
            raise UsageError(
                "give the service: /api/v1/snapshots?service=NAME",
                hint=f"the services with snapshots: {known} (GET /api/v1/services)",
            )
        return [row.to_json() for row in commands.snapshots(caller, service, limit)]

    @router.get(
        "/snapshots/{snapshot_id}",
        summary="One snapshot with its values and readings (as `backout snapshots S --show ID`)",
    )
    def show_snapshot(caller: reader, snapshot_id: int) -> dict[str, Any]:
        return commands.snapshot_show(
            caller, _service_of(caller, snapshot_id), snapshot_id
        ).to_json()

    @router.post(
        "/snapshots",
        status_code=201,
        summary="Record a service's last known good state from one of the server's plans "
        "(as `backout snapshot PLAN`); audited",
    )
    def take_snapshot(caller: operator, body: SnapshotRequest) -> dict[str, Any]:
        path = folder.path(body.plan)
        report = commands.snapshot(caller, path, body.telemetry_window, body.environment)
        return report.to_json()

    return router


def _service_of(caller: Caller, snapshot_id: int) -> str:
    with caller.store.session(read_only=True) as session:
        row = session.get(SnapshotRow, snapshot_id)
        service = None if row is None else row.service
    if service is None:
        raise NotFound(
            f"no snapshot #{snapshot_id}",
            hint="list a service's with GET /api/v1/snapshots?service=NAME",
        )
    return service


def install(app: FastAPI, gate: Gate, folder: PlanFolder) -> None:
    """Add the flags, audit, outbox and snapshots endpoints to ``app``."""
    for router in (api_flags.flags(gate), api_audit.audit(gate), api_audit.outbox(gate)):
        app.include_router(router)
    app.include_router(snapshots(gate, folder))
