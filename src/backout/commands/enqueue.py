"""Start a run for a worker: what ``POST /api/v1/runs`` does.

Everything :func:`backout.commands.run` checks before it executes is checked here, in the
same order (the plan loads and lints clean, the environment exists, no step needs a
release that a backout has not got, the baseline the steps use is there, secrets resolve,
the change is approved, the service is free); then the run is created ``pending`` with
its service's lease handed back in the same transaction. That commit rings the workers'
doorbell (:mod:`backout.store.notices`): a worker — ``backout worker``, or ``backout
server --workers N`` in any process on the store — claims the run at once and executes it.
A refused run leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backout.commands.caller import Caller
from backout.commands.runs import refuse_lint_errors, refuse_release_users
from backout.engine.create import create_run
from backout.plans import load_plan, with_notify_defaults
from backout.reports import RunSummary
from backout.spec.environments import select_environment
from backout.store import leases


def enqueue(
    caller: Caller,
    path: str | Path,
    reason: str,
    *,
    environment: str | None = None,
    change_id: int | None = None,
) -> RunSummary:
    """Create a pending run of the plan's backout (as ``backout run`` would execute it) and
    leave it to a worker; ``reason`` is journalled with the run and audited."""
    loaded = load_plan(path)
    refuse_release_users(loaded)
    extra: dict[str, Any] = {
        "environment": select_environment(loaded.plan, environment),
        "reason": reason,
    }
    loaded = with_notify_defaults(loaded, caller.notify)
    refuse_lint_errors(loaded, strict=False)
    owner = leases.new_owner()
    row = create_run(
        caller.store,
        loaded,
        caller.actor,
        owner,
        caller.lease_ttl,
        change_id,
        extra,
        for_worker=True,
    )
    return RunSummary.of(row)
