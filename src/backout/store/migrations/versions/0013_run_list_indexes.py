"""run_list_indexes: the runs list filtered by service, status or mode, in time order

The API's runs list (and `backout runs`) pages newest first by ``(created_at, id)``, often
with one filter. With an index on the filtered column alone, SQLite's planner takes it and
sorts every matching run (plan document and all) to return fifty: 0.3-0.45 s for
``mode=watch`` over 100,000 runs. An index on ``(column, created_at, id)`` hands the rows
over in the order asked, so a page is one index range read whatever the filter and depth.
Each replaces the single-column index it begins with.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("service", "status", "mode")


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_runs_{column}_created", "runs", [column, "created_at", "id"])
        op.drop_index(f"ix_runs_{column}", table_name="runs")


def downgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_runs_{column}", "runs", [column])
        op.drop_index(f"ix_runs_{column}_created", table_name="runs")
