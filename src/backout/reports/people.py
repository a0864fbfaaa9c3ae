"""Results of telling people: test messages, acknowledgements, status updates, incidents
and the status page."""

from __future__ import annotations

from dataclasses import dataclass

from backout.reports.base import _Record


@dataclass(frozen=True)
class ChannelTest(_Record):
    """How the test message to one channel went."""

    channel: str
    kind: str
    ok: bool
    error: str
    outbox_id: int


@dataclass(frozen=True)
class NotifyTestReport(_Record):
    """What `backout notify test` did, channel by channel."""

    plan: str
    results: list[ChannelTest]

    @property
    def exit_code(self) -> int:
        """0 when every channel took its message, 1 otherwise."""
        return 0 if all(r.ok for r in self.results) else 1


@dataclass(frozen=True)
class Acknowledgement(_Record):
    """`backout ack`: who took the run, when, what it waited for, who was told."""

    run_id: str
    actor: str
    at: float
    waiting_for: str
    told: list[str]
    audit_seq: int


@dataclass(frozen=True)
class StatusUpdate(_Record):
    """`backout notify update`: a person's status update, and who was told. For the run's
    first update, ``first_update_s`` is how long after the incident began it came."""

    run_id: str
    actor: str
    at: float
    message: str
    told: list[str]
    audit_seq: int
    first_update_s: float | None


@dataclass(frozen=True)
class IncidentUpdateEntry(_Record):
    """One move of an incident (``internal``: never published)."""

    id: int
    status: str
    component_status: str
    message: str
    actor: str
    at: float
    internal: bool


@dataclass(frozen=True)
class IncidentReport(_Record):
    """An incident on the status page, with its updates oldest first."""

    id: int
    service: str
    component: str
    title: str
    status: str
    impact: str
    run_id: str | None
    internal: bool
    created_at: float
    updated_at: float
    resolved_at: float | None
    updates: list[IncidentUpdateEntry]


@dataclass(frozen=True)
class StatusPageReport(_Record):
    """What ``backout status-page build`` wrote, and what the visibility guard withheld."""

    out_dir: str
    files: list[str]
    indicator: str
    description: str
    components: int
    open_incidents: int
    resolved_incidents: int
    withheld: dict[str, int]
    resolved_now: list[int]
