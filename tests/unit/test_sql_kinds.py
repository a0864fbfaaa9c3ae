"""The database kinds without a database: statement splitting, option rules, how a
fingerprint difference is worded, and plans that use them loading (or not) with clear
errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backout.actions.alembic import AlembicOptions
from backout.actions.sql_migration import split_postgres, split_sqlite
from backout.errors import PlanError
from backout.plans import load_plan
from backout.probes.fingerprint import FingerprintOptions, decode, differences
from backout.probes.sql import SqlCheckOptions
from backout.probes.sqldb import Database, shown


def test_postgres_statements_keep_quotes_bodies_and_comments_whole() -> None:
    script = (
        "-- a comment; not a statement\n"
        "CREATE TABLE t (note text DEFAULT 'a;b');\n"
        "\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; SELECT 2; $body$ LANGUAGE sql;\n"
        '/* block; comment */ ALTER TABLE "we;ird" ADD COLUMN x int;\n'
        "  ;\n"
    )
    statements = split_postgres(script)
    assert [s.line for s in statements] == [1, 4, 5]
    assert statements[1].sql.startswith("CREATE FUNCTION")
    assert "SELECT 2; $body$" in statements[1].sql
    assert statements[2].sql.endswith("ADD COLUMN x int;")


def test_sqlite_statements_keep_a_trigger_whole() -> None:
    script = (
        "CREATE TABLE t (id int);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET id = id; DELETE FROM t WHERE 0;\n"
        "END;\n"
        "DROP TABLE x"
    )
    statements = split_sqlite(script)
    assert [s.line for s in statements] == [1, 2, 5]
    assert statements[1].sql.endswith("END;")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"query": "SELECT 1"}, "give `no_rows: true`, or `equals` and/or `min`/`max`"),
        ({"query": "SELECT 1", "no_rows": True, "equals": "1"}, "give `no_rows: true`"),
        ({"query": "SELECT 1", "min": 1, "tolerance": "1%"}, "`tolerance` needs `equals`"),
        ({"query": "SELECT 1", "equals": "1", "tolerance": "a lot"}, "write a number"),
    ],
)
def test_a_sql_check_needs_one_clear_expectation(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SqlCheckOptions.model_validate({"url": "sqlite://", **options})


def test_alembic_moves_one_way() -> None:
    with pytest.raises(ValidationError, match="exactly one of `upgrade:` or `downgrade:`"):
        AlembicOptions(upgrade="head", downgrade="base")
    assert AlembicOptions(downgrade="0001").verb == "downgrade"


def test_fingerprint_tables_shorthand_and_rules() -> None:
    assert FingerprintOptions(url="sqlite://", tables=["a", "b"]).tables == {"a": "*", "b": "*"}
    with pytest.raises(ValidationError, match="name at least one column"):
        FingerprintOptions(url="sqlite://", tables={"a": []})
    with pytest.raises(ValidationError, match="give a list of columns"):
        FingerprintOptions(url="sqlite://", tables={"a": "id"})


def test_differences_are_worded_per_table_and_column() -> None:
    def table(rows: int, checksum: str, **columns: str) -> dict[str, object]:
        return {"rows": rows, "columns": list(columns), "checksum": checksum, "by_column": columns}

    before = {"orders": table(3, "aa", id="1", status="2"), "users": table(2, "bb", id="3")}
    after = {"orders": table(2, "ab", id="1", status="9"), "users": table(2, "bb", id="3")}
    judged = {"orders": ["id", "status"], "users": ["id"]}
    assert differences(before, after, judged) == [
        "orders: row count 3 → 2",
        "orders: checksum differs in columns [status]",
    ]
    assert differences(before, after, {"orders": ["id"]}) == ["orders: row count 3 → 2"]


def test_a_value_that_is_not_a_fingerprint() -> None:
    with pytest.raises(Exception, match="`equals` is not a fingerprint"):
        decode("20000")


def test_a_url_is_shown_without_its_password() -> None:
    shown_url = shown(Database(url="postgres://app:pw-in-url@db/shop"))
    assert "pw-in-url" not in shown_url
    assert shown_url.startswith("postgresql+psycopg://app:***@db/shop")
    assert "s3cret" not in shown(Database(url="postgresql://app@db/shop", password="s3cret"))


def test_a_plan_with_the_database_kinds_loads(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: shop\n"
        "baseline:\n"
        "  revision: {alembic: {url: sqlite:///shop.db}}\n"
        "  data: {fingerprint: {url: sqlite:///shop.db, tables: [orders]}}\n"
        "  orders: {sql: {url: sqlite:///shop.db, query: SELECT count(*) FROM orders}}\n"
        "steps:\n"
        "  - name: revert\n"
        "    sql_migration: {url: sqlite:///shop.db, up: up.sql, down: down.sql, "
        "direction: down}\n"
        "verify:\n"
        "  - name: same data\n"
        '    fingerprint: {url: sqlite:///shop.db, equals: "{{ baseline.data }}"}\n'
        "  - name: no orphans\n"
        "    sql: {url: sqlite:///shop.db, query: SELECT 1 WHERE 0, no_rows: true}\n"
    )
    loaded = load_plan(plan)
    assert [s.kind for s in loaded.plan.steps] == ["sql_migration"]


def test_a_misspelled_option_says_where(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: shop\nsteps:\n  - name: up\n    alembic: {config: a.ini, upgrade: head, "
        "pasword: x}\n"
    )
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    assert "plan.yaml:4" in str(caught.value.issues[0])
    assert "pasword" in str(caught.value.issues[0])
