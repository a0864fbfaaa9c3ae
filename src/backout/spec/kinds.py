"""The kinds a plan may name, as the spec layer sees them: one registry per kinded section.

The spec layer knows no action, check, source or trigger itself; whoever loads a plan
hands it the registries (:mod:`backout.plans` binds the built-ins and the installed
plugins). That keeps spec below the packages that define kinds, with no import upward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backout.plugins import Registry


@dataclass(frozen=True)
class Kinds:
    actions: Registry[Any]  # `steps:`, and the steps and `undo:` of deploy stages
    checks: Registry[Any]  # `verify:`
    sources: Registry[Any]  # `baseline:`
    telemetry: Registry[Any]  # `telemetry:`
    triggers: Registry[Any]  # `triggers:`; each kind says whether it `needs_signal`
    faults: Registry[Any]  # `rehearsal.faults:`
    channels: Registry[Any]  # `notify.channels:`

    def of(self, section: str) -> Registry[Any]:
        """The registry the entries of a kinded section are looked up in."""
        return {
            "steps": self.actions,
            "deploy_steps": self.actions,
            "rehearsal_break": self.actions,
            "faults": self.faults,
            "verify": self.checks,
            "baseline": self.sources,
            "telemetry": self.telemetry,
            "triggers": self.triggers,
            "notify_channels": self.channels,
        }[section]
