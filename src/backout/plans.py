"""Plans with every kind known: the spec layer's loader and schema, bound to the installed
actions, checks, baseline sources, telemetry sources, triggers and faults (built-ins and
plugins).

The spec layer takes the kinds as a parameter so that it imports none of the packages
that define them; this module, above those packages, is where they meet. Everything above
it (engine, changes, commands, the CLI) loads plans here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from backout.actions import ACTIONS
from backout.channels import CHANNELS
from backout.faults import FAULTS
from backout.probes import CHECKS, SOURCES
from backout.spec import loader, schema
from backout.spec.kinds import Kinds
from backout.spec.loader import LoadedPlan
from backout.spec.models import Notify
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


def notify_defaults(raw: Any, file: str) -> Notify:
    """An organisation's ``[notify]`` defaults (configuration file), validated."""
    return loader.load_notify_defaults(raw, file, KINDS)


def with_notify_defaults(loaded: LoadedPlan, defaults: Notify | None) -> LoadedPlan:
    """The plan with the organisation's notify defaults under its own ``notify:``: the
    plan's channels, contacts, messages and links win by name, its routes come after the
    defaults', and its escalation and update cadence replace the defaults' when it has
    them."""
    if defaults is None:
        return loaded
    own = loaded.plan.notify
    if own is None:
        merged = defaults
    else:
        merged = Notify.model_validate(
            {
                "channels": {**defaults.channels, **own.channels},
                "routes": [*defaults.routes, *own.routes],
                "messages": {**defaults.messages, **own.messages},
                "links": {**defaults.links, **own.links},
                "contacts": {**defaults.contacts, **own.contacts},
                "escalation": own.escalation or defaults.escalation,
                "updates": own.updates or defaults.updates,
            }
        )
    return replace(loaded, plan=loaded.plan.model_copy(update={"notify": merged}))


def plan_schema() -> dict[str, Any]:
    """The plan's JSON Schema, with every installed kind."""
    return schema.plan_schema(KINDS)
