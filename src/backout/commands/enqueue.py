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
from typing import Any, Literal

from backout.commands.caller import Caller
from backout.commands.runs import refuse_lint_errors, refuse_release_users
from backout.engine.create import create_run
from backout.errors import UsageError
from backout.plans import load_plan, with_notify_defaults
from backout.reports import RunSummary
from backout.spec.environments import select_environment
from backout.store import leases

Mode = Literal["backout", "deploy", "watch"]
MODES: tuple[Mode, ...] = ("backout", "deploy", "watch")


def enqueue(
    caller: Caller,
    path: str | Path,
    reason: str,
    *,
    environment: str | None = None,
    change_id: int | None = None,
    mode: Mode = "backout",
    release: str | None = None,
    watch_for: float | None = None,
) -> RunSummary:
    """Create a pending run and leave it to a worker; ``reason`` is journalled with the run
    and audited. ``mode``: the plan's backout (as ``backout run`` executes it), a deploy of
    ``release`` stage by stage (``backout deploy``), or a watch of the live release for
    ``watch_for`` seconds (``backout watch --for``); a deploy or watch backs out by itself
    when a trigger fires, or an alert reaches the service."""
    loaded = load_plan(path)
    name = select_environment(loaded.plan, environment)
    extra: dict[str, Any] = {"environment": name, "reason": reason}
    if mode == "deploy":
        if loaded.plan.deploy is None:
            raise UsageError(
                f"{loaded.shown}: the plan has no `deploy:` block",
                hint="add `deploy: {stages: [...]}`; see docs/deploy.md",
            )
        extra |= {"mode": "deploy", "release": release}
    elif mode == "watch":
        if watch_for is None or watch_for <= 0:
            raise UsageError("a watch needs how long to watch", hint="give for: 30m")
        extra |= {"mode": "watch", "watch_for": watch_for}
    elif release is not None or watch_for is not None:
        raise UsageError(
            "a backout takes no release and no watch time",
            hint="give mode: deploy with a release, or mode: watch with for",
        )
    if release is None:
        refuse_release_users(loaded)
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
