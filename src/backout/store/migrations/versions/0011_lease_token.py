"""lease_token: a fencing token on each lease, one higher at every claim of the service

An executor keeps the token of its claim and every journal write checks, in its own
transaction, that the service's lease still carries this owner and token; an executor
whose lease was taken over (it hung, the heartbeat stopped) can then write nothing more.
A released lease keeps its row (owner '') so the next claim still counts up from it.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("token", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    op.execute("DELETE FROM leases WHERE owner = ''")
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("token")
