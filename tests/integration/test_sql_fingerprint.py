"""Data fingerprints, `sql` checks and `sql_migration` steps on real PostgreSQL and SQLite:
a fingerprint is equal again after a migration rolled back by its down file, and differs
after each deliberate data change (a row edited, deleted, added; a column changed), naming
the table and the columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from backout.actions.sql_migration import SqlMigrationAction, SqlMigrationOptions
from backout.kernel.options import Context
from backout.probes.fingerprint import (
    FingerprintCheck,
    FingerprintCheckOptions,
    FingerprintOptions,
    FingerprintSource,
)
from backout.probes.sql import AlembicSource, AlembicSourceOptions, SqlCheck, SqlCheckOptions
from backout.redact import Redactor
from backout.store.dialect import normalize_url

SHOP = """
CREATE TABLE customers (id integer PRIMARY KEY, email varchar(200) NOT NULL);
CREATE TABLE orders (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    status varchar(20),
    total numeric(10, 2) NOT NULL
);
"""
# a rename-and-backfill migration, as the seed's PostgreSQL rollback had: new column,
# values copied, old column dropped; its down file puts the old column back
UP = """
ALTER TABLE orders ADD COLUMN state varchar(20);
UPDATE orders SET state = status;
ALTER TABLE orders DROP COLUMN status;
"""
DOWN = """
ALTER TABLE orders ADD COLUMN status varchar(20);
UPDATE orders SET status = state;
ALTER TABLE orders DROP COLUMN state;
"""


@pytest.fixture(params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with customers (50) and orders (200), one NULL status among them."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    sql(url, SHOP)
    sql(url, "INSERT INTO customers VALUES " + ", ".join(f"({i}, 'c{i}@x')" for i in range(50)))
    rows = ", ".join(
        f"({i}, {i % 50}, {'NULL' if i == 7 else repr(('new', 'paid')[i % 2])}, {i}.25)"
        for i in range(200)
    )
    sql(url, f"INSERT INTO orders VALUES {rows}")
    return url


def sql(url: str, script: str) -> None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            for statement in filter(str.strip, script.split(";")):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def ctx(folder: Path = Path("."), timeout: float = 30.0) -> Context:
    return Context(folder, timeout, {}, Redactor())


def baseline(url: str) -> str:
    tables = {"customers": "*", "orders": ["id", "customer_id", "status", "total"]}
    return FingerprintSource().read(FingerprintOptions(url=url, tables=tables), ctx())


def verdict(url: str, equals: str) -> tuple[bool, str]:
    found = FingerprintCheck().check(FingerprintCheckOptions(url=url, equals=equals), ctx())
    return found.passed, found.reason


def test_equal_after_a_migration_rolled_back_by_its_down_file(shop: str, tmp_path: Path) -> None:
    before = baseline(shop)
    (tmp_path / "up.sql").write_text(UP)
    (tmp_path / "down.sql").write_text(DOWN)
    options = SqlMigrationOptions(url=shop, up="up.sql", down="down.sql")
    action = SqlMigrationAction()
    done = action.execute(options, ctx(tmp_path))
    assert done.ok, done.summary
    assert done.detail["applied"] == "up"
    passed, reason = verdict(shop, before)
    assert not passed
    assert "no column 'status'" in reason  # the migration is live: the column is gone
    undone = action.reverse(options, done.detail, ctx(tmp_path))
    assert undone.ok, undone.summary
    assert verdict(shop, before) == (
        True,
        "fingerprint matches the baseline (customers 50 rows, orders 200 rows)",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "UPDATE orders SET total = 99.99 WHERE id = 3",
            "orders: checksum differs in columns [total]",
        ),
        ("DELETE FROM orders WHERE id = 199", "orders: row count 200 → 199"),
        (
            "INSERT INTO orders VALUES (200, 1, 'new', 1.00)",
            "orders: row count 200 → 201",
        ),
        (
            "UPDATE orders SET status = 'paid' WHERE id = 7",
            "orders: checksum differs in columns [status]",
        ),
        (
            "UPDATE customers SET email = 'C1@X' WHERE id = 1",
            "customers: checksum differs in columns [email]",
        ),
    ],
    ids=["edited", "deleted", "added", "null-filled", "other-table"],
)
def test_a_deliberate_change_is_found_and_named(shop: str, change: str, expected: str) -> None:
    before = baseline(shop)
    sql(shop, change)
    passed, reason = verdict(shop, before)
    assert not passed
    assert expected in reason


def test_values_swapped_between_rows_are_found(shop: str) -> None:
    # the column's multiset is unchanged; pairing each value with the key still sees it
    before = baseline(shop)
    sql(
        shop,
        "UPDATE orders SET status = CASE id WHEN 1 THEN 'new' ELSE 'paid' END WHERE id IN (1, 2)",
    )
    assert verdict(shop, before) == (False, "orders: checksum differs in columns [status]")


def test_a_column_changed_in_type_is_found(shop: str) -> None:
    before = baseline(shop)
    if shop.startswith("sqlite"):  # no ALTER COLUMN TYPE: a new column takes its place
        sql(
            shop,
            "ALTER TABLE orders ADD COLUMN t2 text; UPDATE orders SET t2 = printf('%.2f', total);"
            "ALTER TABLE orders DROP COLUMN total; ALTER TABLE orders RENAME COLUMN t2 TO total",
        )
    else:
        sql(shop, "ALTER TABLE orders ALTER COLUMN total TYPE numeric(12, 3)")
    passed, reason = verdict(shop, before)
    assert not passed
    assert "orders: checksum differs in columns [total]" in reason


def test_a_check_can_judge_some_columns_only(shop: str) -> None:
    before = baseline(shop)
    sql(shop, "UPDATE orders SET status = 'paid' WHERE id = 7")
    only_totals = FingerprintCheckOptions(url=shop, equals=before, tables={"orders": ["total"]})
    assert FingerprintCheck().check(only_totals, ctx()).passed


def test_sql_checks_and_sources(shop: str) -> None:
    check = SqlCheck()

    def run(**options: object) -> tuple[bool, str]:
        found = check.check(SqlCheckOptions.model_validate({"url": shop, **options}), ctx())
        return found.passed, found.reason

    assert run(query="SELECT count(*) FROM orders", equals="200") == (True, "value 200")
    assert run(query="SELECT count(*) FROM orders", equals="201") == (
        False,
        "value 200, expected 201",
    )
    assert run(query="SELECT count(*) FROM orders", equals="201", tolerance="1%")[0]
    assert run(query="SELECT count(*) FROM orders", min=201) == (
        False,
        "value 200, expected at least 201",
    )
    passed, reason = run(
        query="SELECT id, status FROM orders WHERE status IS NULL OR status LIKE 'n%' ORDER BY id",
        no_rows=True,
    )
    assert not passed
    assert reason.startswith(
        "expected no rows; first 5 and more: (id=0, status=new); (id=2, status=new)"
    )
    passed, reason = run(query="SELECT * FROM nope", no_rows=True)
    assert not passed
    assert "nope" in reason
    assert AlembicSource().read(AlembicSourceOptions(url=shop), ctx()) == "base"


def test_a_password_never_shows(postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "nobody@")
    options = SqlCheckOptions(url=url, password="hunter2-secret", query="SELECT 1", equals="1")
    found = SqlCheck().check(options, Context(Path("."), 5.0, {}, Redactor(["hunter2-secret"])))
    assert not found.passed
    assert "hunter2" not in found.reason
    assert "nobody" in found.reason  # the database's own words: which role failed


def test_a_slow_query_is_cancelled_at_the_timeout(shop: str) -> None:
    slow = (
        "SELECT pg_sleep(30)"
        if shop.startswith("postgresql")
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM c"
    )
    options = SqlCheckOptions(url=shop, query=slow, equals="1")
    found = SqlCheck().check(options, ctx(timeout=1.0))
    assert (found.passed, found.reason) == (
        False,
        "timed out after 1s (the statement was cancelled)",
    )


def test_a_failing_migration_rolls_back_whole(shop: str, tmp_path: Path) -> None:
    (tmp_path / "up.sql").write_text(
        "ALTER TABLE orders ADD COLUMN note text;\n\n"
        "UPDATE orders SET note = 'x';\nSELECT * FROM nope;\n"
    )
    (tmp_path / "down.sql").write_text("ALTER TABLE orders DROP COLUMN note;\n")
    before = baseline(shop)
    options = SqlMigrationOptions(url=shop, up="up.sql", down="down.sql")
    done = SqlMigrationAction().execute(options, ctx(tmp_path))
    assert not done.ok
    assert done.summary.startswith("up.sql:4: ")
    assert done.summary.endswith("(rolled back)")
    check = SqlCheckOptions(url=shop, query="SELECT count(*) FROM orders WHERE id = 1", equals="1")
    assert SqlCheck().check(check, ctx()).passed
    assert verdict(shop, before)[0]
    # the column is not there: the ALTER before the failure was rolled back too
    again = SqlMigrationAction().execute(
        SqlMigrationOptions(url=shop, up="down.sql", down="up.sql"), ctx(tmp_path)
    )
    assert not again.ok
    assert "note" in again.summary
