"""Statuspage's vocabulary: incident phases, component states, impacts and the page's
indicator, and what a service's ``status_page:`` section resolves to."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backout.errors import UsageError
from backout.spec.models import StatusPage
from backout.store.incidents import OPEN, STATUSES

INCIDENT_STATUSES = STATUSES
OPEN_STATUSES = OPEN
# in the order a reader fears them; under_maintenance is planned, not an outage
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
IMPACTS = ("none", "minor", "major", "critical")
# a component's state as Statuspage's impact (and the page's indicator)
_IMPACT_OF = {
    "operational": "none",
    "under_maintenance": "none",
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
}
INDICATOR_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}
DEFAULT_QUIET_S = 1800.0


def impact_of(component_status: str) -> str:
    return _IMPACT_OF[component_status]


def worse_impact(*impacts: str) -> str:
    return max(impacts, key=IMPACTS.index, default="none")


def worst_status(statuses: Iterable[str]) -> str:
    return max(statuses, key=COMPONENT_STATUSES.index, default="operational")


def check_status(status: str) -> str:
    if status not in INCIDENT_STATUSES:
        raise UsageError(
            f"unknown incident status {status!r}",
            hint="use one of " + ", ".join(INCIDENT_STATUSES),
        )
    return status


def check_component_status(status: str) -> str:
    if status not in COMPONENT_STATUSES:
        raise UsageError(
            f"unknown component status {status!r}",
            hint="use one of " + ", ".join(COMPONENT_STATUSES),
        )
    return status


def default_component(service: str) -> str:
    """The component of a service key with no ``status_page.component``: ``shop``, or
    ``shop (production)`` for ``shop@production``."""
    name, _, environment = service.partition("@")
    return f"{name} ({environment})" if environment else name


def stable_id(*parts: str) -> str:
    """A short id that stays the same across builds (Statuspage's ids are opaque strings)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Section:
    """A service's place on the page: its plan's ``status_page:`` with the defaults filled."""

    service: str
    component: str
    group: str | None = None
    internal: bool = False
    quiet_s: float = DEFAULT_QUIET_S
    description: str | None = None
    maintenance: bool = False  # announce the service's change windows

    @classmethod
    def of(cls, service: str, section: StatusPage | None) -> Section:
        if section is None:
            return cls(service, default_component(service))
        return cls(
            service,
            section.component or default_component(service),
            section.group,
            section.internal,
            section.quiet,
            section.description,
            section.maintenance,
        )

    @classmethod
    def of_plan_doc(cls, service: str, plan_doc: Mapping[str, Any] | None) -> Section:
        """From a run's stored plan; a run stored before ``status_page:`` existed gets the
        default. A section this version cannot read is kept internal: what cannot be read
        cannot be known to be public."""
        raw = ((plan_doc or {}).get("plan") or {}).get("status_page")
        try:
            return cls.of(service, StatusPage.model_validate(raw) if raw else None)
        except ValueError:
            return cls(service, default_component(service), internal=True)

    @property
    def component_id(self) -> str:
        return stable_id("component", self.group or "", self.component)
