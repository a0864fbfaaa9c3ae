"""The gate's `preflight` requirement, on SQLite and PostgreSQL stores: a plan with a
migration step may start only after `backout preflight` passed for its version (a failed
latest preflight, or an edited plan, refuses it); a plan without migration steps passes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.integration.change_helpers import create_change, invoke, write

POLICY = "low: {preflight: true}\nmedium: {}\nhigh: {}\ncritical: {}\n"
UP = "CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL);\n"


def migration_plan(folder: Path, down: str) -> str:
    (folder / "up.sql").write_text(UP)
    (folder / "down.sql").write_text(down)
    return write(
        folder / "plan.yaml",
        textwrap.dedent(f"""\
        plan: notes
        risk: low
        roles:
          approvers: [bob]
        steps:
          - name: notes table
            sql_migration: {{url: "sqlite:///{folder}/app.db", up: up.sql, down: down.sql}}
        """),
    )


def preflight_check(url: str, change_id: int, policy: str) -> dict[str, object]:
    result = invoke(url, "gate", str(change_id), "--policy", policy, "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return dict(checks["preflight"])


def test_a_migration_needs_a_passing_preflight_of_its_version(
    store_url: str, tmp_path: Path
) -> None:
    policy = write(tmp_path / "policy.yaml", POLICY)
    plan = migration_plan(tmp_path, "DROP TABLE notes;\n")
    change_id = create_change(store_url, plan, "--risk", "low")

    missing = preflight_check(store_url, change_id, policy)
    assert missing["passed"] is False
    assert "no preflight recorded for plan version" in str(missing["reason"])
    assert f"backout preflight {plan}" in str(missing["reason"])
    approved = invoke(
        store_url, "change", "approve", str(change_id), "--policy", policy, actor="bob"
    )
    assert approved.exit_code == 0, approved.output
    refused = invoke(store_url, "change", "start", str(change_id), "--policy", policy)
    assert refused.exit_code == 2, refused.output
    assert "preflight" in refused.output

    # a down file that leaves the table behind: the preflight fails, and so does the gate
    (tmp_path / "down.sql").write_text("SELECT 1;\n")
    assert invoke(store_url, "preflight", plan).exit_code == 1
    failed = preflight_check(store_url, change_id, policy)
    assert failed["passed"] is False
    assert "the latest preflight of this version failed" in str(failed["reason"])

    (tmp_path / "down.sql").write_text("DROP TABLE notes;\n")  # the plan's text is unchanged
    assert invoke(store_url, "preflight", plan).exit_code == 0
    passed = preflight_check(store_url, change_id, policy)
    assert passed["passed"] is True, passed
    assert "up, down and up again matched" in str(passed["reason"])

    # an edited plan is another version: its preflight is still to be done
    with open(plan, "a") as more:
        more.write("    timeout: 30s\n")
    again = preflight_check(store_url, change_id, policy)
    assert again["passed"] is False
    assert "no preflight recorded" in str(again["reason"])


def test_a_plan_without_migrations_has_nothing_to_preflight(store_url: str, tmp_path: Path) -> None:
    policy = write(tmp_path / "policy.yaml", POLICY)
    plan = write(
        tmp_path / "plan.yaml",
        "plan: web\nrisk: low\nsteps:\n  - name: restart\n    run: ['true']\n",
    )
    change_id = create_change(store_url, plan, "--risk", "low")
    check = preflight_check(store_url, change_id, policy)
    assert (check["required"], check["passed"]) == (True, True)
    assert check["reason"] == "the plan has no migration steps"
