"""``POST /api/v1/runs``: start a run of a plan from the server's plan folder (``--plans``),
for a worker to execute (:func:`backout.commands.enqueue`).

The request names the plan; it never carries a plan's text. Everything ``backout run``
checks up front is checked before the answer, so a refused run leaves nothing behind and
answers problem+json; an accepted one answers 202 with the pending run and its
``Location``. A worker claims it at once — ``backout server --workers N`` on any server
of the store, or ``backout worker`` — and its progress reads at ``Location`` and
``…/events``.

No ``from __future__ import annotations`` here: FastAPI reads the handler's annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backout import commands
from backout.commands.caller import Caller
from backout.commands.enqueue import Mode
from backout.kernel.durations import parse_duration
from backout.kernel.roles import Permission
from backout.server.auth import Gate, needs
from backout.server.plan_folder import PlanFolder
from backout.server.routes import API


class StartRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    plan: str = Field(
        min_length=1, max_length=200, description="A plan of the server's --plans folder, by name."
    )
    reason: str = Field(
        min_length=1, max_length=2000, description="Why: journalled with the run and audited."
    )
    environment: str | None = Field(
        None, max_length=200, description="Required when the plan declares environments."
    )
    change: int | None = Field(
        None, ge=1, description="An approved change record the run belongs to."
    )
    mode: Mode = Field(
        "backout",
        description="backout: the plan's backout now (`backout run`); deploy: the release "
        "stage by stage, backing out if a trigger fires (`backout deploy`); watch: the live "
        "release for `for`, backing out if a trigger fires (`backout watch`).",
    )
    release: str | None = Field(
        None, min_length=1, max_length=200, description="deploy: the release going out."
    )
    watch_for: float | None = Field(
        None,
        alias="for",
        description="watch: how long, as 30m, 2h or seconds.",
    )

    @field_validator("watch_for", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        if value is None:
            return None
        seconds = parse_duration(value)  # its ValueError names the accepted forms: a 422
        if seconds <= 0:
            raise ValueError("a watch lasts longer than 0s")
        return seconds


def start(gate: Gate, plans: PlanFolder) -> APIRouter:
    router = APIRouter(prefix=API, tags=["runs"])
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.post(
        "/runs",
        status_code=202,
        summary="Start a backout, deploy or watch of a plan of the server's folder, for a "
        "worker to execute",
    )
    def start_run(caller: operator, body: StartRequest, response: Response) -> dict[str, Any]:
        path = plans.path(body.plan)
        started = commands.enqueue(
            caller,
            path,
            body.reason,
            environment=body.environment,
            change_id=body.change,
            mode=body.mode,
            release=body.release,
            watch_for=body.watch_for,
        )
        response.headers["Location"] = f"{API}/runs/{started.run_id}"
        return started.to_json()

    return router
