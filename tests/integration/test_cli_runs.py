"""The run verbs through the CLI layer (click's runner), on SQLite and PostgreSQL:
exit codes, --json shapes, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from backout.cli import cli
from backout.store.db import open_store

GOOD = """plan: web
steps:
  - name: write marker
    run: [touch, marker.txt]
    timeout: 5s
verify:
  - name: marker exists
    file_hash: {path: marker.txt, equals: EMPTY_SHA256}
""".replace("EMPTY_SHA256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
FAILING = """plan: web
steps:
  - name: breaks
    run: ['false']
"""


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, "--actor", "ci-bot", *args], obj={})


def plan_file(folder: Path, text: str) -> str:
    path = folder / "plan.yaml"
    path.write_text(text)
    return str(path)


def test_run_status_journal_runs_json(store_url: str, tmp_path: Path) -> None:
    result = invoke(store_url, "run", plan_file(tmp_path, GOOD), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert report["verified"] is True
    assert report["actor"] == "ci-bot"
    assert report["steps"][0]["name"] == "write marker"
    run_id = report["run_id"]
    status = invoke(store_url, "status", run_id[:6], "--json")  # a unique prefix is enough
    assert status.exit_code == 0
    assert json.loads(status.stdout)["run_id"] == run_id
    events = json.loads(invoke(store_url, "journal", run_id, "--json").stdout)
    assert events[0]["kind"] == "run_created"
    assert events[-1]["data"]["outcome"] == "succeeded"
    listed = json.loads(invoke(store_url, "runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == [run_id]
    human = invoke(store_url, "status", run_id)
    assert "write marker" in human.stdout
    assert "succeeded" in human.stdout


def test_failed_backout_exits_1_and_status_agrees(store_url: str, tmp_path: Path) -> None:
    result = invoke(store_url, "run", plan_file(tmp_path, FAILING))
    assert result.exit_code == 1
    assert "step 1 'breaks' failed: exit code 1" in result.output
    run_id = json.loads(invoke(store_url, "runs", "--json").stdout)[0]["run_id"]
    assert invoke(store_url, "status", run_id).exit_code == 1


@pytest.mark.parametrize(
    "args", [["status", "missing"], ["journal", "missing"], ["resume", "missing"]]
)
def test_unknown_run_exits_2(store_url: str, args: list[str]) -> None:
    open_store(store_url).dispose()  # a store without that run
    result = invoke(store_url, *args)
    assert result.exit_code == 2
    assert "no run 'missing' in this store" in result.output
    assert "Traceback" not in result.output


def test_invalid_plan_is_refused_with_positions(store_url: str, tmp_path: Path) -> None:
    result = invoke(store_url, "run", plan_file(tmp_path, "plan: x\nsteps:\n  - nme: a\n"))
    assert result.exit_code == 2
    assert "plan.yaml:3:5: steps[0].nme: unknown" in result.output


def test_decision_for_a_step_that_does_not_exist(store_url: str, tmp_path: Path) -> None:
    run_id = json.loads(invoke(store_url, "run", plan_file(tmp_path, GOOD), "--json").stdout)[
        "run_id"
    ]
    result = invoke(store_url, "resume", run_id, "--retry", "7")
    assert result.exit_code == 2
    assert "step 7 does not exist; the plan has 1 steps" in result.output


def test_decision_for_a_step_that_was_not_interrupted(store_url: str, tmp_path: Path) -> None:
    run_id = json.loads(invoke(store_url, "run", plan_file(tmp_path, GOOD), "--json").stdout)[
        "run_id"
    ]
    result = invoke(store_url, "resume", run_id, "--mark-done", "1")
    assert result.exit_code == 2
    assert "step 1 'write marker' is succeeded, not interrupted" in result.output


def test_worker_with_nothing_to_do(store_url: str) -> None:
    result = invoke(store_url, "worker", "--once", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_bad_store_url_exits_2() -> None:
    result = CliRunner().invoke(cli, ["--db", "not a url", "runs"], obj={})
    assert result.exit_code == 2
    assert "cannot use store URL" in result.output


def test_unreachable_store_is_a_clear_error_without_password() -> None:
    result = CliRunner().invoke(
        cli, ["--db", "postgresql://me:s3cret@127.0.0.1:1/x", "runs"], obj={}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: cannot reach store postgresql+psycopg://me:***@127.0.0.1:1/x: "
    )
    assert "s3cret" not in result.output
    assert len(result.stderr.splitlines()) == 2  # the error on one line, then the hint
    assert (
        result.stderr.splitlines()[1] == "hint: is the database running, and does the URL name it?"
    )


def test_bad_lease_ttl_env_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKOUT_LEASE_TTL", "soon")
    result = CliRunner().invoke(cli, ["runs"], obj={})
    assert result.exit_code == 2
    assert "BACKOUT_LEASE_TTL='soon' is not a number of seconds" in result.output
