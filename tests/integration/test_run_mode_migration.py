"""Migration 0010 on SQLite and PostgreSQL: a run's mode becomes a column, filled from the
runs' stored plan documents (a document without a mode, or with one this version does not
know, is a plain backout), and goes down again; new runs get theirs at creation.

Migration 0013: the runs list's filters get indexes in time order, which the model declares
too, and a filtered page on SQLite reads one of them in order, with no sort."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backout import commands
from backout.server.pages import Filters
from backout.settings import Settings
from backout.store.db import HEAD_REVISION, Store, _alembic_config
from backout.store.models import Base
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
        assert {"ix_runs_mode_created", "ix_runs_created_at"} <= indexes  # 0013's, at head
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


def test_the_run_lists_filters_have_indexes_in_time_order(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.open()
        config = _alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0012")
        before = {i["name"] for i in sa.inspect(store.engine).get_indexes("runs")}
        assert {"ix_runs_service", "ix_runs_status", "ix_runs_mode"} <= before
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        found = {i["name"]: i["column_names"] for i in sa.inspect(store.engine).get_indexes("runs")}
        for column in ("service", "status", "mode"):
            assert found[f"ix_runs_{column}_created"] == [column, "created_at", "id"]
            assert f"ix_runs_{column}" not in found
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "runs" in repr(d) and "ix_runs" in repr(d)] == []
        if store.is_sqlite:
            from backout.server import pages

            query = pages.page_query(Filters.parse(None, None, "watch", None), 50, None)
            sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
            with store.engine.connect() as conn:
                plan = " ".join(
                    str(row[-1]) for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))
                )
            assert "ix_runs_mode_created" in plan
            assert "TEMP B-TREE" not in plan  # read in order: no sort of every match
    finally:
        store.dispose()
