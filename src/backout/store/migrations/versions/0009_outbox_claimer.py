"""outbox_claimer: which process claimed an event it is sending (host, boot, pid, start)

A sender that dies mid-delivery leaves its claim; on the same host another sender sees that
the claimer is gone and retries at once instead of waiting for the claim to expire.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
