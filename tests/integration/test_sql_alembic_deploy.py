"""An alembic deploy backed out for real: snapshot (revision, fingerprint) → `backout deploy`
upgrades a PostgreSQL schema → a person pulls the cord (`backout trigger`) → the stage's
reverse downgrades to the recorded revision → the `sql` and `fingerprint` checks verify it.
The store runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine

from backout import commands
from backout.actions.alembic import AlembicAction, AlembicOptions
from backout.errors import UsageError
from backout.kernel.options import Context
from backout.redact import Redactor
from backout.settings import Settings
from backout.store.dialect import normalize_url
from tests.callers import caller

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="deployer", lease_ttl=5.0)


@pytest.fixture
def shop_url(postgres_database: str) -> Iterator[str]:
    """The shop's own schema, apart from the store's (both keep an `alembic_version`)."""
    schema = f"shop_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{postgres_database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def shop_at_0001(folder: Path, url: str) -> None:
    shutil.copytree(EXAMPLES / "alembic-shop", folder / "shop")
    options = AlembicOptions(config="shop/alembic.ini", upgrade="0001", url=url)
    done = AlembicAction().execute(options, Context(folder, 120.0, {}, Redactor()))
    assert done.ok, done.summary
    engine = create_engine(normalize_url(url))
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO customers VALUES " + ", ".join(f"({i}, 'c{i}@x')" for i in range(20))
        )
        connection.exec_driver_sql(
            "INSERT INTO orders VALUES " + ", ".join(f"({i}, {i % 20}, {i}.5)" for i in range(60))
        )
    engine.dispose()


PLAN = """\
plan: shop-schema
service: shop-db
secrets:
  db: {env: SHOP_TEST_DB}
baseline:
  revision: {alembic: {url: "{{ secrets.db }}"}}
  data:
    fingerprint: {url: "{{ secrets.db }}", tables: [customers, orders]}
deploy:
  stages:
    - name: migrate
      steps:
        - name: upgrade to head
          alembic: {config: shop/alembic.ini, upgrade: head, url: "{{ secrets.db }}"}
          timeout: 2m
      hold: 60s
steps:
  - name: downgrade to the baseline revision
    alembic:
      config: shop/alembic.ini
      downgrade: "{{ baseline.revision }}"
      url: "{{ secrets.db }}"
    timeout: 2m
    idempotent: true
verify:
  - name: at the baseline revision
    sql:
      url: "{{ secrets.db }}"
      query: "SELECT version_num FROM alembic_version"
      equals: "{{ baseline.revision }}"
  - name: the data is the baseline's
    fingerprint: {url: "{{ secrets.db }}", equals: "{{ baseline.data }}"}
    timeout: 30s
"""


def pull_the_cord(store_url: str, reason: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            commands.trigger(caller(settings(store_url)), "shop-db", reason)
            return
        except UsageError:  # the deploy is not watching yet
            time.sleep(0.1)


def test_alembic_deploy_trigger_downgrade_verified(
    store_url: str, shop_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_at_0001(tmp_path, shop_url)
    monkeypatch.setenv("SHOP_TEST_DB", shop_url)
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent(PLAN))
    snap = commands.snapshot(caller(settings(store_url)), plan)
    assert snap.values["revision"] == "0001"

    threading.Thread(
        target=pull_the_cord, args=(store_url, "checkout errors after the migration"), daemon=True
    ).start()
    report = commands.deploy(caller(settings(store_url)), plan)

    assert (report.status, report.result) == ("succeeded", "backed_out"), report.message
    summaries = [s.summary for s in report.steps]
    assert "upgraded 0001 → 0002" in summaries
    assert "downgraded 0002 → 0001" in summaries  # the stage's reverse
    assert "already at 0001" in summaries  # the plan's own step finds nothing left to do
    checks = {c.name: (c.passed, c.reason) for c in report.checks}
    assert checks["at the baseline revision"] == (True, "value 0001")
    assert checks["the data is the baseline's"] == (
        True,
        "fingerprint matches the baseline (customers 20 rows, orders 60 rows)",
    )
