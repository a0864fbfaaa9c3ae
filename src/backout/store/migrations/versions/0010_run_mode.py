"""run_mode: a run's mode (backout, deploy, watch, rehearsal) as a column, and runs by time

The mode was only inside ``runs.plan_doc``, a JSON document of a few kilobytes that every
query over many runs had to parse (``backout metrics`` over 100,000 runs spent most of its
time there). It is set once, when the run is created, and never changes. Existing runs are
filled from their documents.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MODES = ("backout", "deploy", "watch", "rehearsal")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=False, server_default="backout"))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        read = "CAST(plan_doc AS json) ->> 'mode'"
    else:
        read = "json_extract(plan_doc, '$.mode')"
    known = ", ".join(f"'{mode}'" for mode in MODES)
    # every part is a constant of this file: no user text reaches the statement
    op.execute(f"UPDATE runs SET mode = {read} WHERE {read} IN ({known})")  # noqa: S608
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_mode", "runs", ["mode"])


def downgrade() -> None:
    op.drop_index("ix_runs_mode", table_name="runs")
    op.drop_index("ix_runs_created_at", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("mode")
