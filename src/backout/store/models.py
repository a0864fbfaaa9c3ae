"""Tables. Times are UTC epoch seconds (float): portable across SQLite and PostgreSQL and
cheap to compare inside SQL (lease expiry)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    """A run. ``status`` is a projection of the journal, updated in the same transaction."""

    __tablename__ = "runs"
    # the runs list, filtered by one of these, newest first: one index range read a page
    __table_args__ = tuple(
        Index(f"ix_runs_{column}_created", column, "created_at", "id")
        for column in ("service", "status", "mode")
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    plan: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    plan_file: Mapped[str] = mapped_column(Text)
    plan_version: Mapped[str] = mapped_column(String(64))
    plan_doc: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32))
    # backout | deploy | watch | rehearsal: set at creation, as plan_doc["mode"] says
    mode: Mapped[str] = mapped_column(String(16), default="backout", server_default="backout")
    actor: Mapped[str] = mapped_column(String(200))
    snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    change_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class EventRow(Base):
    """One journal entry. ``(run_id, seq)`` is unique, so two writers can never fork a journal."""

    __tablename__ = "journal"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_journal_run_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(40))
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class SnapshotRow(Base):
    """Baseline values captured for a service before a deploy."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_service_taken", "service", "taken_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(200))
    plan_version: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    values: Mapped[dict[str, str]] = mapped_column(JSON)


class LeaseRow(Base):
    """Who may execute a service's active run, until when. Renewed by heartbeat. ``token``
    (fencing) counts the claims of the service; a released lease has owner ''."""

    __tablename__ = "leases"

    service: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    token: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class ChangeRow(Base):
    """A change record: a deploy that carries a backout plan, with its lifecycle."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text)
    plan: Mapped[str] = mapped_column(String(200))
    plan_file: Mapped[str] = mapped_column(Text)
    plan_version: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(200), index=True)
    risk: Mapped[str] = mapped_column(String(16))
    risk_computed: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[float | None] = mapped_column(Float, nullable=True)
    window_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requester: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class ApprovalRow(Base):
    """One approver's decision on a change, bound to the plan version they saw."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text)
    plan_version: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)


class RehearsalRow(Base):
    """The evidence of one drill of a plan version (``backout rehearse``), written in the
    transaction that finishes its run; the gate's ``rehearsal`` check reads it.
    ``outcome`` is ``succeeded`` for a drill that passed; ``duration_s`` is its total (the
    backout from its start to verified), ``phases`` every timing, ``journal_hash`` the
    SHA-256 of the run's journal as it stood when the drill ended."""

    __tablename__ = "rehearsals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan: Mapped[str] = mapped_column(String(200), index=True)
    plan_version: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    duration_s: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)
    service: Mapped[str | None] = mapped_column(String(200), nullable=True)
    environment: Mapped[str | None] = mapped_column(String(200), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    phases: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    faults: Mapped[list[Any]] = mapped_column(JSON, default=list)
    journal_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditRow(Base):
    """One link of the audit chain: ``hash = sha256(prev_hash || canonical_json(record))``."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class OutboxRow(Base):
    """An outbound event for one route (``itsm`` for change records), delivered after its
    transaction commits by a channel. ``key`` identifies the delivery across retries and
    senders (the receiver's idempotency key); ``stream`` orders events (``change:7``,
    ``run:…``); ``ref`` is what the receiver named when it acknowledged the event."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    route: Mapped[str] = mapped_column(String(64), index=True)
    stream: Mapped[str] = mapped_column(String(200), index=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("changes.id"), index=True, nullable=True
    )
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str] = mapped_column(Text, default="")
    ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # while `sending`: the claiming process, "host|boot|pid|start" (see channels.delivery)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class FlagRow(Base):
    """A feature flag. Enabled, a share of targeting keys (``percentage``) gets ``on_variant``;
    everyone else, and everyone while disabled, gets ``off_variant``. ``version`` counts
    changes (apps and caches compare it)."""

    __tablename__ = "flags"
    __table_args__ = (
        CheckConstraint("percentage >= 0 AND percentage <= 100", name="ck_flags_percentage"),
    )

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    variants: Mapped[dict[str, Any]] = mapped_column(JSON)
    on_variant: Mapped[str] = mapped_column(String(100))
    off_variant: Mapped[str] = mapped_column(String(100))
    percentage: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))


class IncidentRow(Base):
    """An incident on the status page: one service's component, with Statuspage's phases
    (investigating, identified, monitoring, resolved, postmortem). ``impact`` is the worst
    the component got during it; ``quiet_s`` how long it stays in monitoring without a new
    update before it resolves (the plan's ``status_page.quiet``, kept so no plan is needed
    then). ``internal`` incidents are never published."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_service_status", "service", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200))
    component: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    impact: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    internal: Mapped[bool] = mapped_column(Boolean)
    quiet_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class IncidentUpdateRow(Base):
    """One move of an incident: its new phase, the component's state from then on, and the
    message shown (never shown when ``internal``)."""

    __tablename__ = "incident_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    component_status: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)
    internal: Mapped[bool] = mapped_column(Boolean)
