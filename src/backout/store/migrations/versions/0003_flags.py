"""feature flags: on/off, variants, percentage rollout

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("on_variant", sa.String(100), nullable=False),
        sa.Column("off_variant", sa.String(100), nullable=False),
        sa.Column("percentage", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.CheckConstraint("percentage >= 0 AND percentage <= 100", name="ck_flags_percentage"),
    )


def downgrade() -> None:
    op.drop_table("flags")
