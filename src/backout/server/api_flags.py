"""``/api/v1/flags``: the feature flags of the store, as ``backout flags list/get/set`` show
and change them. Every change goes through :func:`backout.commands.flags.set_flag`, which
writes its ``flag.set`` audit record in the same transaction (``source`` ``api``); a flag's
history is those records.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from backout import commands
from backout.commands import flags as verbs
from backout.commands.caller import Caller
from backout.flags.model import FlagChange
from backout.flags.repo import AUDIT_ACTION
from backout.kernel.roles import Permission
from backout.server.auth import Gate, needs
from backout.server.routes import API

SOURCE = "api"  # the flag.set audit record's source
HISTORY_LIMIT = 1000


def flags(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["flags"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.get("/flags", summary="Every flag with its state (as `backout flags list --json`)")
    def list_flags(caller: reader) -> list[dict[str, Any]]:
        return [flag.to_json() for flag in verbs.list_flags(caller)]

    @router.get("/flags/{key}", summary="One flag (as `backout flags get KEY --json`)")
    def get_flag(
        caller: reader,
        key: str,
        targeting_key: Annotated[
            str | None,
            Query(
                alias="for",
                max_length=1000,
                description="Also evaluate the flag for this targeting key (`--for`)",
            ),
        ] = None,
    ) -> dict[str, Any]:
        data = verbs.get_flag(caller, key).to_json()
        if targeting_key is not None:
            context = {"targetingKey": targeting_key}
            data["evaluation"] = verbs.evaluate_flag(caller, key, context).to_ofrep()
        return data

    @router.put(
        "/flags/{key}",
        summary="Create or change a flag; audited as flag.set (as `backout flags set`)",
    )
    def set_flag(caller: operator, key: str, change: FlagChange) -> dict[str, Any]:
        update = verbs.set_flag(caller, key, change, SOURCE)
        before = update.before.to_json() if update.before else None
        return {"before": before, "after": update.after.to_json()}

    @router.get(
        "/flags/{key}/history",
        summary="A flag's changes, oldest first: its flag.set audit records",
    )
    def flag_history(
        caller: reader,
        key: str,
        limit: Annotated[
            int, Query(ge=1, le=HISTORY_LIMIT, description="At most this many (the newest)")
        ] = 100,
    ) -> list[dict[str, Any]]:
        verbs.get_flag(caller, key)  # 400 for a bad key, 404 for an unknown flag
        records = commands.audit_log(caller, AUDIT_ACTION, f"flag:{key}", limit=limit)
        return [record.to_json() for record in records if record.action == AUDIT_ACTION]

    return router
