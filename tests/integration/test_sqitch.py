"""The ``sqitch`` action and baseline source against the real Sqitch (Debian's package) and
the local PostgreSQL: a throwaway database per test, a tiny Sqitch project in tmp_path."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from backout.actions.sqitch import SqitchAction
from backout.cli import cli
from backout.kernel.options import Context
from backout.probes.sqitch import SqitchSource, SqitchTarget
from backout.redact import Redactor
from tests.conftest import missing_service

PASSWORD = "sq1tch-pa55word"  # trust auth ignores it; it must still never be shown
PLAN = """%syntax-version=1.0.0
%project=shop

users 2024-05-01T10:00:00Z Alice <alice@example.com> # users table
orders [users] 2024-05-01T10:01:00Z Alice <alice@example.com> # orders table
@v1 2024-05-01T10:02:00Z Alice <alice@example.com> # release 1

coupons [orders] 2024-05-02T10:00:00Z Alice <alice@example.com> # coupons table
"""
SCRIPTS = {
    "users": ("CREATE TABLE users (id int PRIMARY KEY);", "DROP TABLE users;"),
    "orders": ("CREATE TABLE orders (id int, user_id int REFERENCES users);", "DROP TABLE orders;"),
    "coupons": ("CREATE TABLE coupons (code text);", "DROP TABLE coupons;"),
}


@pytest.fixture
def database(postgres_admin: str) -> Iterator[str]:
    """A database of its own, dropped afterwards: Sqitch keeps its registry in it."""
    if shutil.which("sqitch") is None:
        missing_service("sqitch is not installed: apt-get install sqitch libdbd-pg-perl")
    name = f"backout_sqitch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{postgres_admin.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "db"
    for part in ("deploy", "revert", "verify"):
        (folder / part).mkdir(parents=True)
    (folder / "sqitch.conf").write_text("[core]\n\tengine = pg\n", encoding="utf-8")
    (folder / "sqitch.plan").write_text(PLAN, encoding="utf-8")
    for change, (up, down) in SCRIPTS.items():
        table = change
        (folder / "deploy" / f"{change}.sql").write_text(f"BEGIN;\n{up}\nCOMMIT;\n")
        (folder / "revert" / f"{change}.sql").write_text(f"BEGIN;\n{down}\nCOMMIT;\n")
        (folder / "verify" / f"{change}.sql").write_text(
            f"SELECT 1/count(*) FROM pg_tables WHERE tablename = '{table}';\n"
        )
    return folder


def target(database: str) -> str:
    """``db:pg://postgres:PASSWORD@127.0.0.1:5432/NAME``"""
    rest = database.split("://", 1)[1]
    user, host = rest.split("@", 1)
    return f"db:pg://{user}:{PASSWORD}@{host}"


def tables(database: str) -> set[str]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}


def ctx(folder: Path) -> Context:
    return Context(folder, 60.0, {}, Redactor([PASSWORD]))


def sqitch(project: Path, database: str, **options: Any) -> Any:
    action = SqitchAction()
    parsed = action.Options.model_validate({"target": target(database), "dir": ".", **options})
    return action.execute(parsed, ctx(project))


def test_deploy_to_a_tag_then_all_then_again(project: Path, database: str) -> None:
    first = sqitch(project, database, to="@v1")
    assert first.ok, first
    assert first.summary == "deployed through orders (was no change)"
    assert tables(database) == {"users", "orders"}

    second = sqitch(project, database)
    assert second.summary == "deployed through coupons (was orders)"
    assert second.detail["before"]["change"] == "orders"
    assert second.detail["after"]["change"] == "coupons"
    assert len(second.detail["after"]["id"]) == 40

    again = sqitch(project, database)
    assert again.ok
    assert again.summary == "nothing to deploy: coupons is deployed"
    for outcome in (first, second, again):
        assert PASSWORD not in outcome.output
        assert PASSWORD not in outcome.summary


def test_a_failed_verify_reports_the_change_deployed_after_it(project: Path, database: str) -> None:
    assert sqitch(project, database, to="@v1").ok
    (project / "verify" / "coupons.sql").write_text("SELECT no_such_column FROM coupons;\n")

    outcome = sqitch(project, database)

    assert not outcome.ok
    assert outcome.summary.startswith("sqitch deploy failed at change coupons (")
    assert 'column "no_such_column" does not exist' in outcome.summary
    assert outcome.summary.endswith("deployed now: orders")
    assert outcome.detail["failed_change"] == "coupons"
    assert outcome.detail["after"]["change"] == "orders"
    assert tables(database) == {"users", "orders"}  # Sqitch reverted the failed change


def test_a_half_applied_script_is_reported_as_it_is(project: Path, database: str) -> None:
    # no transaction: the first statement stays, the second fails (sqitch #330)
    (project / "deploy" / "users.sql").write_text(
        "CREATE TABLE users (id int PRIMARY KEY);\nSELECT 1/0;\n"
    )
    outcome = sqitch(project, database, to="@v1")
    assert not outcome.ok
    assert "division by zero" in outcome.summary
    assert outcome.summary.endswith("deployed now: no change")
    assert "users" in tables(database)  # what Sqitch does not know of, the database shows


def test_reverse_of_a_deploy_reverts_to_the_change_before_it(project: Path, database: str) -> None:
    assert sqitch(project, database, to="@v1").ok
    action = SqitchAction()
    options = action.Options.model_validate({"target": target(database), "dir": "."})
    done = action.execute(options, ctx(project))
    assert done.ok
    assert "coupons" in tables(database)

    back = action.reverse(options, done.detail, ctx(project))

    assert back.ok, back
    assert back.summary == "reverted to orders (was coupons)"
    assert tables(database) == {"users", "orders"}


def test_roundtrip_deploys_verifies_and_comes_back(project: Path, database: str) -> None:
    assert sqitch(project, database, to="@v1").ok
    outcome = sqitch(project, database, action="roundtrip")
    assert outcome.ok, outcome
    assert outcome.summary == "roundtrip: deployed and verified through coupons, reverted to orders"
    assert outcome.detail["reached"]["change"] == "coupons"
    assert tables(database) == {"users", "orders"}


def test_revert_needs_a_change_to_stop_at() -> None:
    with pytest.raises(ValueError, match="revert needs `to:`"):
        SqitchAction.Options.model_validate({"target": "db:pg:shop", "action": "revert"})


def test_baseline_and_revert_through_the_engine(
    project: Path, database: str, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_SQITCH_TARGET", target(database))
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        """plan: shop-schema
secrets:
  db: {env: SHOP_SQITCH_TARGET}
baseline:
  schema: {sqitch: {target: "{{ secrets.db }}", dir: db}}
steps:
  - name: revert the schema to the recorded change
    sqitch: {action: revert, target: "{{ secrets.db }}", dir: db, to: "{{ baseline.schema }}"}
    timeout: 60s
    idempotent: true
verify:
  - name: coupons is gone
    command: [psql, -XAtc, "SELECT to_regclass('public.coupons') IS NULL", "DB"]
""".replace("DB", database),
        encoding="utf-8",
    )
    source = SqitchSource()
    assert sqitch(project, database, to="@v1").ok
    assert source.read(SqitchTarget(target=target(database), dir="."), ctx(project)) == "orders"
    runner = CliRunner()
    snap = runner.invoke(cli, ["--db", store_url, "snapshot", str(plan)], obj={})
    assert snap.exit_code == 0, snap.output
    assert sqitch(project, database).ok  # the bad deploy

    result = runner.invoke(cli, ["--db", store_url, "run", str(plan), "--json"], obj={})

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert tables(database) == {"users", "orders"}
    journal = runner.invoke(cli, ["--db", store_url, "journal", report["run_id"], "--json"], obj={})
    assert journal.exit_code == 0, journal.output
    assert PASSWORD not in journal.output
    finished = [e for e in json.loads(journal.stdout) if e["kind"] == "step_finished"]
    assert finished[0]["data"]["before"]["change"] == "coupons"
    assert finished[0]["data"]["after"]["change"] == "orders"
