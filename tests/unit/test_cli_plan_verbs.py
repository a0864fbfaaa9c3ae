"""The plan verbs through the CLI: validate, init, show, schema, and run --dry-run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from backout.cli import cli
from backout.plans import load_plan

WritePlan = Callable[..., Path]

VALID = """\
plan: shop
steps:
  - name: restart
    run: [./bin/restart]
    timeout: 10s
"""
INVALID = """\
plan: shop
stepz: []
steps:
  - name: restart
    run: ./bin/restart
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every command from the test's folder, so paths print short and relative."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj={})


# --- validate ---------------------------------------------------------------------------
def test_validate_a_valid_plan(write_plan: WritePlan) -> None:
    write_plan(VALID)
    result = invoke("validate", "plan.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout == "plan.yaml: valid\n"
    assert result.stderr == ""


def test_validate_an_invalid_plan_lists_every_issue(write_plan: WritePlan) -> None:
    write_plan(INVALID)
    result = invoke("validate", "plan.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: plan.yaml:2:1: stepz: unknown key 'stepz' (did you mean 'steps'?)",
        "error: plan.yaml:5:5: steps[0].run: takes a list [program, arg, ...], not a "
        "string; write ['./bin/restart'], or use a `shell:` step if you need a shell",
    ]
    assert "valid" not in result.stdout


def test_validate_several_files_fails_if_any_fails(write_plan: WritePlan) -> None:
    write_plan(VALID, "good.yaml")
    write_plan(INVALID, "bad.yaml")
    result = invoke("validate", "good.yaml", "bad.yaml")
    assert result.exit_code == 2
    assert "good.yaml: valid" in result.stdout
    assert "error: bad.yaml:2:1: stepz" in result.stderr


def test_validate_a_missing_file() -> None:
    result = invoke("validate", "nope.yaml")
    assert result.exit_code == 2
    assert result.stderr == "error: nope.yaml: no such file\n"


def test_validate_json(write_plan: WritePlan) -> None:
    write_plan(VALID, "good.yaml")
    write_plan(INVALID, "bad.yaml")
    result = invoke("validate", "--json", "good.yaml", "bad.yaml")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["good.yaml"] == []
    assert [(i["line"], i["col"], i["field"], i["severity"]) for i in report["bad.yaml"]] == [
        (2, 1, "stepz", "error"),
        (5, 5, "steps[0].run", "error"),
    ]
    assert report["bad.yaml"][0]["hint"] == "did you mean 'steps'?"


def test_validate_needs_a_file() -> None:
    assert invoke("validate").exit_code == 2


# --- init -------------------------------------------------------------------------------
def test_init_writes_a_starter_plan_that_validates_strictly(in_tmp: Path) -> None:
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert "wrote backout.yaml" in result.stdout
    starter = in_tmp / "backout.yaml"
    assert starter.read_text().startswith("# A backout plan")
    check = invoke("validate", "--strict", "backout.yaml")
    assert check.exit_code == 0, check.output
    assert check.stdout == "backout.yaml: valid\n"
    assert load_plan(starter).plan.plan == "my-service"


def test_init_starter_matches_the_json_schema(in_tmp: Path) -> None:
    invoke("init", "starter.yaml")
    schema = json.loads(invoke("schema").stdout)
    plan = YAML(typ="safe", pure=True).load((in_tmp / "starter.yaml").read_text())
    assert list(Draft202012Validator(schema).iter_errors(plan)) == []


def test_init_refuses_to_overwrite(in_tmp: Path) -> None:
    target = in_tmp / "mine.yaml"
    target.write_text("precious: true\n")
    result = invoke("init", "mine.yaml")
    assert result.exit_code == 2
    assert "mine.yaml already exists" in result.stderr
    assert "--force" in result.stderr
    assert target.read_text() == "precious: true\n"
    forced = invoke("init", "--force", "mine.yaml")
    assert forced.exit_code == 0, forced.output
    assert target.read_text().startswith("# A backout plan")


def test_init_creates_the_plans_folder(in_tmp: Path) -> None:
    """Like `git init DIR`: a plan in a folder that does not exist yet is written there."""
    result = invoke("init", "ops/checkout/backout.yaml")
    assert result.exit_code == 0, result.output
    assert "wrote ops/checkout/backout.yaml" in result.stdout
    assert invoke("validate", "--strict", "ops/checkout/backout.yaml").exit_code == 0


def test_init_under_a_file_is_refused_without_a_traceback(in_tmp: Path) -> None:
    (in_tmp / "notes.txt").write_text("precious\n")
    result = invoke("init", "notes.txt/sub/backout.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: cannot write notes.txt/sub/backout.yaml: notes.txt is a file, not a folder",
        "hint: choose another path for the plan",
    ]
    assert (in_tmp / "notes.txt").read_text() == "precious\n"


def test_init_on_a_folder_is_refused(in_tmp: Path) -> None:
    (in_tmp / "plans").mkdir()
    for args in (["init", "plans"], ["init", "--force", "plans"]):
        result = invoke(*args)
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        assert "is a directory" in result.stderr
    assert list((in_tmp / "plans").iterdir()) == []


# --- show and schema --------------------------------------------------------------------
def test_show_renders_the_runbook(write_plan: WritePlan) -> None:
    write_plan(VALID)
    result = invoke("show", "plan.yaml")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "# Backout runbook: shop"
    assert (
        "1. **restart** — `run ./bin/restart` (timeout 10s, not idempotent, on failure: stop)"
        in lines
    )


def test_show_an_invalid_plan_exits_2_with_the_issues(write_plan: WritePlan) -> None:
    write_plan(INVALID)
    result = invoke("show", "plan.yaml")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "error: plan.yaml:2:1: stepz: unknown key 'stepz'" in result.stderr


def test_schema_prints_json_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == "backout plan"


# --- run --dry-run ----------------------------------------------------------------------
DRY_PLAN = """\
plan: shop
baseline:
  release: {readlink: current}
steps:
  - name: switch back
    symlink: {link: current, target: "{{ baseline.release }}"}
    timeout: 5s
  - name: leave a mark
    run: [touch, "{{ baseline.release }}.marker"]
    timeout: 5s
  - name: script
    shell: touch shell.marker
    timeout: 5s
verify:
  - name: the release is there
    command: [test, -d, "{{ baseline.release }}"]
"""


@pytest.fixture
def dry_setup(in_tmp: Path, write_plan: WritePlan) -> str:
    for name in ("v1", "v2"):
        (in_tmp / "releases" / name).mkdir(parents=True)
    os.symlink("releases/v1", in_tmp / "current")
    write_plan(DRY_PLAN)
    db = f"sqlite:///{in_tmp / 'x.db'}"
    snap = invoke("--db", db, "snapshot", "plan.yaml")
    assert snap.exit_code == 0, snap.output
    os.remove(in_tmp / "current")  # the bad deploy moves `current` on
    os.symlink("releases/v2", in_tmp / "current")
    return db


def untouched(folder: Path) -> None:
    assert os.readlink(folder / "current") == "releases/v2"
    assert not (folder / "releases" / "v1.marker").exists()
    assert not (folder / "shell.marker").exists()


def test_dry_run_renders_templates_and_executes_nothing(dry_setup: str, in_tmp: Path) -> None:
    result = invoke("--db", dry_setup, "run", "--dry-run", "plan.yaml")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run of shop for service shop (snapshot #1); nothing is executed"
    assert '   {"link": "current", "target": "releases/v1"}' in lines
    assert '   ["touch", "releases/v1.marker"]' in lines
    assert '   "touch shell.marker"' in lines
    assert '   ["test", "-d", "releases/v1"]' in lines
    assert "problem" not in result.stdout
    untouched(in_tmp)


def test_dry_run_json(dry_setup: str, in_tmp: Path) -> None:
    result = invoke("--db", dry_setup, "run", "--dry-run", "--json", "plan.yaml")
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["snapshot_id"] == 1
    assert report["baseline"] == {"release": "releases/v1"}
    assert [s["rendered"] for s in report["steps"]] == [
        {"link": "current", "target": "releases/v1"},
        ["touch", "releases/v1.marker"],
        "touch shell.marker",
    ]
    assert report["problems"] == []
    untouched(in_tmp)
    runs = invoke("--db", dry_setup, "runs", "--json")
    assert json.loads(runs.stdout) == []  # a dry run records no run


def test_dry_run_without_a_snapshot_reports_the_problem(
    in_tmp: Path, write_plan: WritePlan
) -> None:
    write_plan(DRY_PLAN)
    result = invoke(
        "--db", f"sqlite:///{in_tmp / 'x.db'}", "run", "--dry-run", "--json", "plan.yaml"
    )
    assert result.exit_code == 1, result.output  # it lists problems: the run would fail
    report = json.loads(result.stdout)
    assert report["snapshot_id"] is None
    assert report["steps"][0]["rendered"]["target"] == "{{ baseline.release }}"
    # one problem that says what to do, not a template error per step that uses the baseline
    assert report["problems"] == [
        "no snapshot for service shop: run `backout snapshot plan.yaml` "
        f"(no store at {in_tmp / 'x.db'} yet)"
    ]
    assert not (in_tmp / "x.db").exists()  # a dry run writes nothing, not even a store
    assert not (in_tmp / "shell.marker").exists()


def test_durations_on_the_command_line(in_tmp: Path) -> None:
    """Worker and outbox options take the plan's duration syntax, and say a minimum."""
    db = f"sqlite:///{in_tmp / 'x.db'}"
    short = invoke("--db", db, "worker", "--once", "--interval", "10ms")
    assert short.exit_code == 2
    assert "'10ms' is shorter than the minimum of 0.1s" in short.stderr
    bad = invoke("--db", db, "outbox", "send", "--url", "http://x", "--timeout", "ten")
    assert bad.exit_code == 2
    assert "'ten' is not a duration" in bad.stderr
    ok = invoke("--db", db, "outbox", "send", "--url", "http://127.0.0.1:9", "--timeout", "0s")
    assert ok.exit_code == 0, ok.output  # nothing queued: nothing pending
