"""Migration 0010 on SQLite and PostgreSQL: a run's mode becomes a column, filled from the
runs' stored plan documents (a document without a mode, or with one this version does not
know, is a plain backout), and goes down again; new runs get theirs at creation."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from backout import commands
from backout.settings import Settings
from backout.store.db import HEAD_REVISION, Store, _alembic_config
from tests.callers import caller

DOCS = {
    "r-deploy": {"plan": {}, "mode": "deploy"},
    "r-watch": {"plan": {}, "mode": "watch"},
    "r-drill": {"plan": {}, "mode": "rehearsal"},
    "r-plain": {"plan": {}},
    "r-odd": {"plan": {}, "mode": "something-else"},
}


def test_the_mode_column_is_filled_from_the_plan_documents(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    try:
        store.open()
        assert store.revision() == HEAD_REVISION
        config = _alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0009")
        assert "mode" not in {c["name"] for c in sa.inspect(store.engine).get_columns("runs")}
        with store.engine.begin() as conn:
            for run_id, doc in DOCS.items():
                conn.execute(
                    sa.text(
                        "INSERT INTO runs (id, plan, service, plan_file, plan_version, plan_doc,"
                        " status, actor, created_at, message)"
                        " VALUES (:id, 'p', 's', 'p.yaml', 'v', :doc, 'succeeded', 'a', 1, '')"
                    ),
                    {"id": run_id, "doc": json.dumps(doc)},
                )
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        with store.engine.connect() as conn:
            modes = dict(conn.execute(sa.text("SELECT id, mode FROM runs")).all())
        assert modes == {
            "r-deploy": "deploy",
            "r-watch": "watch",
            "r-drill": "rehearsal",
            "r-plain": "backout",
            "r-odd": "backout",
        }
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("runs")}
        assert {"ix_runs_mode", "ix_runs_created_at"} <= indexes
    finally:
        store.dispose()

    plan = tmp_path / "plan.yaml"
    plan.write_text("plan: shop\nsteps:\n  - name: back\n    run: ['true']\n")
    who = caller(Settings(database_url=store_url))
    ran = commands.run(who, plan)
    with who.store.session() as session:
        assert (
            session.execute(
                sa.text("SELECT mode FROM runs WHERE id = :id"), {"id": ran.run_id}
            ).scalar_one()
            == "backout"
        )
