"""rehearsal_evidence: a rehearsal keeps its service and environment, who ran it, why it
passed or failed, its phase timings, the faults it injected and the hash of its journal

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rehearsals") as batch:
        batch.add_column(sa.Column("service", sa.String(200), nullable=True))
        batch.add_column(sa.Column("environment", sa.String(200), nullable=True))
        batch.add_column(sa.Column("actor", sa.String(200), nullable=True))
        batch.add_column(sa.Column("message", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("phases", sa.JSON, nullable=True))
        batch.add_column(sa.Column("faults", sa.JSON, nullable=True))
        batch.add_column(sa.Column("journal_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rehearsals") as batch:
        dropped = ("journal_hash", "faults", "phases", "message", "actor", "environment", "service")
        for column in dropped:
            batch.drop_column(column)
