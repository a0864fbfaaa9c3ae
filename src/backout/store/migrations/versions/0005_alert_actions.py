"""alert_actions: each Alertmanager alert (fingerprint, startsAt) that made a service back out

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.String(40), nullable=False),
        sa.Column("alert", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("acted_at", sa.Float, nullable=False),
        sa.UniqueConstraint("service", "fingerprint", "starts_at", name="uq_alert_actions_key"),
    )


def downgrade() -> None:
    op.drop_table("alert_actions")
