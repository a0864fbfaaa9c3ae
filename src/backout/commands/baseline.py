"""``snapshot``: record the last known good state of a plan's service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from backout.commands.caller import Caller
from backout.engine import baseline
from backout.errors import UsageError
from backout.plans import load_plan
from backout.redact import Redactor
from backout.reports import SnapshotReport
from backout.spec.environments import environment_values, select_environment
from backout.spec.secrets import resolve_secrets


def snapshot(
    caller: Caller,
    path: str | Path,
    telemetry_window: float = 5.0,
    environment: str | None = None,
) -> SnapshotReport:
    """Record the last known good state: the plan's baseline values, and what its telemetry
    signals read over ``telemetry_window`` seconds (for relative and sequential triggers),
    for the service in ``environment`` (when the plan declares environments)."""
    loaded = load_plan(path)
    plan = loaded.plan
    name = select_environment(plan, environment)
    if not plan.baseline and not plan.telemetry:
        raise UsageError(
            f"{path}: the plan declares no `baseline:` values or `telemetry:` signals to record",
            hint="add e.g. `baseline: {release: {readlink: releases/current}}`",
        )
    secrets = resolve_secrets(plan, loaded.base_dir)

    def scope_for(values: dict[str, str]) -> dict[str, Any]:
        return {
            "env": dict(os.environ),
            "secrets": secrets,
            "baseline": values,
            "environment": environment_values(plan, name),
        }

    service = plan.service_key(name)
    taken = baseline.record(
        caller.store,
        service,
        plan,
        loaded.base_dir,
        loaded.version,
        caller.actor,
        Redactor(secrets.values()),
        scope_for,
        telemetry_window,
        {},
    )
    return SnapshotReport(
        taken.snapshot_id,
        service,
        plan.plan,
        taken.taken_at,
        taken.values,
        taken.signals(),
    )
