"""general_outbox: any event can be queued, for a named route, without a change record

Each row gains its route (``itsm`` for the change events queued so far), its stream (the
order it is delivered in: ``change:ID`` so far), a unique delivery key (the Idempotency-Key
its earlier deliveries already carried: ``backout-outbox-ID``), an optional run, and the
reference the receiver gave (for a delivered ``created`` event, the change's external id,
so later events of that change keep going to the same remote record).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("route", sa.String(64), nullable=True))
        batch.add_column(sa.Column("stream", sa.String(200), nullable=True))
        batch.add_column(sa.Column("key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("run_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("ref", sa.String(200), nullable=True))
        batch.alter_column("change_id", existing_type=sa.Integer, nullable=True)
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.Integer),
        sa.column("change_id", sa.Integer),
        sa.column("event", sa.String),
        sa.column("status", sa.String),
        sa.column("route", sa.String),
        sa.column("stream", sa.String),
        sa.column("key", sa.String),
        sa.column("ref", sa.String),
    )
    changes = sa.table("changes", sa.column("id", sa.Integer), sa.column("external_id", sa.String))
    conn = op.get_bind()
    external = dict(conn.execute(sa.select(changes.c.id, changes.c.external_id)).all())
    for row_id, change_id, event, status in conn.execute(
        sa.select(outbox.c.id, outbox.c.change_id, outbox.c.event, outbox.c.status)
    ).all():
        sent_create = event == "created" and status == "sent"
        conn.execute(
            outbox.update()
            .where(outbox.c.id == row_id)
            .values(
                route="itsm",
                stream=f"change:{change_id}",
                key=f"backout-outbox-{row_id}",
                ref=external.get(change_id) if sent_create else None,
            )
        )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("route", existing_type=sa.String(64), nullable=False)
        batch.alter_column("stream", existing_type=sa.String(200), nullable=False)
        batch.alter_column("key", existing_type=sa.String(200), nullable=False)
        batch.create_unique_constraint("uq_outbox_key", ["key"])
        batch.create_index("ix_outbox_route", ["route"])
        batch.create_index("ix_outbox_stream", ["stream"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_stream")
        batch.drop_index("ix_outbox_route")
        batch.drop_constraint("uq_outbox_key", type_="unique")
        for column in ("ref", "run_id", "key", "stream", "route"):
            batch.drop_column(column)
