"""The change records and their rehearsals over HTTP: each endpoint a thin layer over a verb
of :mod:`backout.commands.changes` or :mod:`backout.commands.rehearsals`, answering with
the verb's typed result as ``--json`` prints it.

A change is created for a plan of the server's plan folder (``backout server --plans DIR``),
named as the folder names it: a request never sends a plan's text, and never a path. The
policy the gate reads is the server's, as the CLI finds it: ``BACKOUT_POLICY`` in the
server's environment, else ``./backout-policy.yaml`` in its folder, else the built-in one.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.
"""

import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from backout.changes.lifecycle import ChangeStatus
from backout.commands import changes as verbs
from backout.commands.caller import Caller
from backout.commands.rehearsals import drills_due, parse_fault, spawned_executor
from backout.commands.rehearsals import rehearsals as recorded_drills
from backout.commands.rehearsals import rehearse as drill
from backout.errors import PlanError
from backout.kernel.roles import Permission
from backout.server.auth import Gate, needs
from backout.server.plan_folder import PlanFolder
from backout.server.routes import API
from backout.spec.fields import Risk

POLICY_ENV = "BACKOUT_POLICY"
MAX_CHANGES = 500
MAX_REHEARSALS = 10000
Text = Annotated[str, Field(max_length=2000)]


def _policy() -> str | None:
    """The policy file the CLI would read in the server's environment (None: the verb's
    default, ``./backout-policy.yaml`` or the built-in policy)."""
    return os.environ.get(POLICY_ENV) or None


class CreateChange(BaseModel):
    plan: str = Field(
        min_length=1,
        max_length=200,
        description="The plan that backs the change out: its name in the server's plan "
        "folder (GET /api/v1/plans), never its text or a path.",
    )
    title: str = Field(min_length=1, max_length=500, description="What the change does.")
    risk: Risk | None = Field(
        None, description="The risk you give it; computed from the plan when omitted."
    )
    window: str | None = Field(
        None,
        max_length=100,
        description="START..END in ISO 8601, e.g. 2026-12-01T22:00..23:30.",
    )
    ref: str | None = Field(None, max_length=200, description="The change's id elsewhere.")


class ChangeDecision(BaseModel):
    comment: Text = Field("", description="Why: kept in the audit trail.")


class StartChange(BaseModel):
    note: Text = Field("", description="A note for the change's history.")
    override: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Start even though policy checks fail (an emergency): the reason is "
        "audited with the checks it overrode.",
    )


class CloseChange(BaseModel):
    outcome: Literal["completed", "failed"] = Field(
        description="completed: the change went well (`backout change complete`); failed: it "
        "did not (`backout change fail`)."
    )
    note: Text = Field("", description="A note for the change's history.")


class Rehearse(BaseModel):
    plan: str = Field(
        min_length=1, max_length=200, description="The plan's name in the server's plan folder."
    )
    trigger: Literal["auto", "manual"] = Field(
        "auto",
        description="auto: the plan's triggers must detect the break; manual: time the "
        "backout alone.",
    )
    faults: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        [],
        max_length=20,
        description="Faults to inject into the backout, as `backout rehearse --fault`: "
        "KIND:KEY=VALUE,… (e.g. 'slow:step=switch back,by=2s').",
    )
    environment: str | None = Field(
        None, max_length=200, description="The plan's environment to drill in (`--env`)."
    )


def changes(gate: Gate, folder: PlanFolder) -> APIRouter:
    router = APIRouter(prefix=API, tags=["changes"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]
    approver = Annotated[Caller, Depends(needs(gate, Permission.APPROVE))]

    @router.get("/changes", summary="Change records, newest first (as `backout change list`)")
    def list_changes(
        caller: reader,
        status: Annotated[ChangeStatus | None, Query(description="Only this state")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 50,
    ) -> list[dict[str, Any]]:
        state = status.value if status else None
        return [row.to_json() for row in verbs.list_all(caller, state, limit)]

    @router.get("/changes/{change_id}", summary="A change (as `backout change show --json`)")
    def show_change(caller: reader, change_id: int) -> dict[str, Any]:
        return verbs.show(caller, change_id).to_json()

    @router.post(
        "/changes",
        status_code=201,
        summary="Record a planned change backed by a plan of the folder (`backout change create`)",
    )
    def create_change(caller: operator, body: CreateChange) -> dict[str, Any]:
        path = folder.path(body.plan)
        report = verbs.create(caller, path, body.title, body.risk, body.window, body.ref)
        return report.to_json()

    @router.post(
        "/changes/{change_id}/approve",
        summary="Approve a change, bound to its plan's current version (`backout change approve`)",
        description="Refused with 403 for the change's requester, and for an actor the "
        "plan's `roles.approvers` does not name.",
    )
    def approve_change(caller: approver, change_id: int, body: ChangeDecision) -> dict[str, Any]:
        return verbs.approve(caller, change_id, body.comment, _policy()).to_json()

    @router.post(
        "/changes/{change_id}/reject",
        summary="Reject a change (`backout change reject`)",
        description="Refused with 403 for the change's requester.",
    )
    def reject_change(caller: approver, change_id: int, body: ChangeDecision) -> dict[str, Any]:
        return verbs.reject(caller, change_id, body.comment).to_json()

    @router.get(
        "/changes/{change_id}/gate",
        summary="The policy checks that decide whether a change may start (`backout gate`)",
        description="Evaluates the checks and changes nothing: `passed` is false when any "
        "fails (where `backout gate` exits 1).",
    )
    def gate_change(caller: reader, change_id: int) -> dict[str, Any]:
        return verbs.gate(caller, change_id, _policy()).to_json()

    @router.post(
        "/changes/{change_id}/start",
        summary="Start an approved change when every policy check passes (`backout change start`)",
        description="Moves the change to in_progress; runs nothing (deploy or run its plan "
        "as usual). A failing check is a 409 naming it, unless `override` says why.",
    )
    def start_change(caller: operator, change_id: int, body: StartChange) -> dict[str, Any]:
        report = verbs.start(caller, change_id, body.note, _policy(), None, body.override)
        return report.to_json()

    @router.post(
        "/changes/{change_id}/close",
        summary="Close a started change as completed or failed (`backout change complete|fail`)",
    )
    def close_change(caller: operator, change_id: int, body: CloseChange) -> dict[str, Any]:
        target = ChangeStatus(body.outcome)
        return verbs.transition(caller, change_id, target, body.note).to_json()

    return router


def rehearsals(gate: Gate, folder: PlanFolder) -> APIRouter:
    router = APIRouter(prefix=API, tags=["rehearsals"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.get("/rehearsals", summary="Recorded drills, newest first (as `backout rehearsals`)")
    def list_rehearsals(
        caller: reader,
        plan: Annotated[str | None, Query(max_length=200, description="Only this plan's")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_REHEARSALS)] = 20,
    ) -> list[dict[str, Any]]:
        return [row.to_json() for row in recorded_drills(caller, plan, limit)]

    @router.get(
        "/rehearsals/due",
        summary="Which plans of the folder are due for a drill (as `backout drills due`)",
        description="`drills`: one entry per plan that loads; `invalid`: the plans that do "
        "not, with their issues (a broken file does not hide the others).",
    )
    def due(
        caller: reader,
        plan: Annotated[
            list[str] | None, Query(description="Only these plans (default: every one)")
        ] = None,
    ) -> dict[str, Any]:
        policy = _policy()
        drills_due(caller, [], policy)  # a policy that does not load is the request's 422
        found: list[dict[str, Any]] = []
        invalid: list[dict[str, Any]] = []
        for name in plan or folder.names():
            path = folder.path(name)
            try:
                found += [row.to_json() for row in drills_due(caller, [path], policy)]
            except PlanError as exc:
                invalid.append({"name": name, "issues": [vars(i) for i in exc.issues]})
        return {"drills": found, "invalid": invalid}

    @router.post(
        "/rehearsals",
        status_code=201,
        summary="Drill a plan of the folder, to its end, within the request (`backout rehearse`)",
        description="The drill's run is journalled like any other; `passed` is its verdict. "
        "A fault that kills the executor (`kill`) is drilled as the CLI drills it: the "
        "drill's executor runs in a process of its own, spawned for the request, which the "
        "fault kills; the request then resumes the run from its journal, as the token's "
        "actor, and answers when the drill is over.",
    )
    def rehearse(caller: operator, body: Rehearse) -> dict[str, Any]:
        path = folder.path(body.plan)
        specs = [parse_fault(text) for text in body.faults]
        manual = body.trigger == "manual"
        report = drill(caller, path, manual, specs, None, body.environment, spawned_executor)
        return report.to_json()

    return router
