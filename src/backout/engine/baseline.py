"""Reading a service's last known good state: the plan's ``baseline:`` values, and what
its telemetry signals looked like (for ``relative`` and ``sequential`` triggers)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes import SOURCES
from backout.redact import Redactor
from backout.spec.models import Plan
from backout.spec.templating import render_value
from backout.store import audit, repo
from backout.store.db import Store
from backout.telemetry import SOURCES as TELEMETRY
from backout.telemetry import Reading, SourceContext, pool
from backout.triggers import Baseline

SOURCE_TIMEOUT_S = 10.0
TELEMETRY_KEY = "_telemetry"  # snapshot value holding the signals' pooled readings (JSON)


def read_values(
    plan: Plan, base_dir: Path, redactor: Redactor, scope: dict[str, Any] | None = None
) -> dict[str, str]:
    """Read every baseline source; its options rendered in ``scope`` (the environment's
    values, the process environment, the secrets) when given."""
    ctx = Context(base_dir, SOURCE_TIMEOUT_S, {}, redactor)
    values: dict[str, str] = {}
    for name, source in plan.baseline.items():
        probe = SOURCES.get(source.kind)
        try:
            raw = render_value(source.options, scope) if scope is not None else source.options
            values[name] = redactor(probe.read(probe.Options.model_validate(raw), ctx))
        except ActionError as exc:
            raise ActionError(
                f"baseline {name!r}: {exc.message}",
                hint="is the good release live? fix the source and retry",
            ) from exc
    return values


def read_telemetry(
    plan: Plan, base_dir: Path, window: float, scope: dict[str, Any]
) -> dict[str, Reading]:
    """Read every signal for ``window`` seconds and pool the readings per signal."""
    samplers, intervals = {}, {}
    for name, signal in plan.telemetry.items():
        source = TELEMETRY.get(signal.kind)
        options = source.Options.model_validate(render_value(signal.options, scope))
        intervals[name] = signal.interval or source.default_interval
        samplers[name] = source.open(
            options,
            SourceContext(timeout=signal.timeout, interval=intervals[name], workdir=base_dir),
        )
    readings: dict[str, list[Reading]] = {name: [] for name in samplers}
    deadline = time.monotonic() + window
    due = dict.fromkeys(samplers, 0.0)
    while time.monotonic() < deadline or any(not r for r in readings.values()):
        now = time.monotonic()
        for name, sampler in samplers.items():
            if now >= due[name]:
                due[name] = now + intervals[name]
                readings[name].append(sampler.read())
        time.sleep(0.05)
    return {name: pool(found) for name, found in readings.items()}


def encode(readings: dict[str, Reading]) -> str:
    return json.dumps(
        {
            name: {
                "at": r.at,
                "status": r.status,
                "value": r.value,
                "events": r.events,
                "trials": r.trials,
                "samples": list(r.samples[-2000:]),
                "detail": r.detail,
            }
            for name, r in readings.items()
        }
    )


def decode(values: dict[str, str]) -> Baseline:
    raw = json.loads(values.get(TELEMETRY_KEY, "{}"))
    return Baseline(
        {
            name: Reading(
                at=d["at"],
                status=d["status"],
                value=d["value"],
                events=d["events"],
                trials=d["trials"],
                samples=tuple(d["samples"]),
                detail=d["detail"],
            )
            for name, d in raw.items()
        }
    )


def template_values(values: dict[str, str]) -> dict[str, str]:
    """What templates see as ``baseline``: the plan's values, not the telemetry record."""
    return {k: v for k, v in values.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Recorded:
    """A snapshot just taken: its id, the values templates see, the telemetry it read."""

    snapshot_id: int
    taken_at: float
    values: dict[str, str]
    readings: dict[str, Reading]

    def signals(self) -> dict[str, dict[str, Any]]:
        """The telemetry readings in brief, as reports and the audit record show them."""
        return {
            name: {
                "status": r.status,
                "value": r.value,
                "events": r.events,
                "trials": r.trials,
                "samples": len(r.samples),
            }
            for name, r in self.readings.items()
        }


def record(
    store: Store,
    service: str,
    plan: Plan,
    base_dir: Path,
    plan_version: str,
    actor: str,
    redactor: Redactor,
    scope_for: Callable[[dict[str, str]], dict[str, Any]],
    window: float,
    details: dict[str, Any],
) -> Recorded:
    """Read and store the last known good state, audited: the one snapshot recorder, for
    ``backout snapshot`` and for a deploy promoting its release, under ``service`` (the
    plan's service key in its environment). ``scope_for`` gives the template scope the
    telemetry options render in, from the values just read."""
    values = read_values(plan, base_dir, redactor, scope_for({}))
    readings: dict[str, Reading] = {}
    if plan.telemetry:
        readings = read_telemetry(plan, base_dir, window, scope_for(values))
        values[TELEMETRY_KEY] = encode(readings)
    with store.session() as session:
        row = repo.add_snapshot(
            session, service, plan.plan, plan_version, time.time(), actor, values
        )
        recorded = Recorded(row.id, row.taken_at, template_values(values), readings)
        audit.append(
            session,
            actor,
            "snapshot.taken",
            f"service:{service}",
            {
                "snapshot_id": row.id,
                "plan": plan.plan,
                "plan_version": plan_version,
                "values": recorded.values,
                "telemetry": recorded.signals(),
                **details,
            },
        )
    return recorded
