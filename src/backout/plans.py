"""Plans with every kind known: the spec layer's loader and schema, bound to the installed
actions, checks, baseline sources, telemetry sources, triggers and faults (built-ins and
plugins).

The spec layer takes the kinds as a parameter so that it imports none of the packages
that define them; this module, above those packages, is where they meet. Everything above
it (engine, changes, commands, the CLI) loads plans here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backout.actions import ACTIONS
from backout.channels import CHANNELS
from backout.faults import FAULTS
from backout.probes import CHECKS, SOURCES
from backout.spec import loader, schema
from backout.spec.kinds import Kinds
from backout.spec.loader import LoadedPlan
from backout.telemetry import SOURCES as TELEMETRY
from backout.triggers import TRIGGERS

KINDS = Kinds(
    actions=ACTIONS,
    checks=CHECKS,
    sources=SOURCES,
    telemetry=TELEMETRY,
    triggers=TRIGGERS,
    faults=FAULTS,
    channels=CHANNELS,
)


def load_plan(path: str | Path) -> LoadedPlan:
    """Read, parse and validate one plan file; raise :class:`~backout.errors.PlanError`
    with every issue."""
    return loader.load_plan(path, KINDS)


def plan_schema() -> dict[str, Any]:
    """The plan's JSON Schema, with every installed kind."""
    return schema.plan_schema(KINDS)
