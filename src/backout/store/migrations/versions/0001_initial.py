"""runs, journal, snapshots, leases

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("plan", sa.String(200), nullable=False),
        sa.Column("service", sa.String(200), nullable=False, index=True),
        sa.Column("plan_file", sa.Text, nullable=False),
        sa.Column("plan_version", sa.String(64), nullable=False),
        sa.Column("plan_doc", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("snapshot_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("run_id", "seq", name="uq_journal_run_seq"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("plan", sa.String(200), nullable=False),
        sa.Column("plan_version", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
    )
    op.create_index("ix_snapshots_service_taken", "snapshots", ["service", "taken_at"])
    op.create_table(
        "leases",
        sa.Column("service", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_snapshots_service_taken", table_name="snapshots")
    op.drop_table("snapshots")
    op.drop_table("journal")
    op.drop_table("runs")
