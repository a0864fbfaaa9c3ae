"""The demo's rehearsal beat: what the gate says of the drill just recorded."""

from __future__ import annotations

import time
from pathlib import Path

from backout import commands
from backout.changes.gate import rehearsal_check
from backout.changes.policy import load_policy
from backout.plans import load_plan
from backout.store import changes as change_repo


def gate_rehearsal(caller: commands.Caller, path: Path) -> str:
    """The gate's rehearsal check, under the built-in policy for the plan's risk."""
    loaded = load_plan(path)
    policy, _ = load_policy(None)
    with caller.store.session() as session:
        rows = change_repo.rehearsals(session, loaded.plan.plan)
    check = rehearsal_check(policy.for_risk(loaded.plan.risk).rehearsal, loaded, rows, time.time())
    return ("pass: " if check.passed else "FAIL: ") + check.reason
