"""Listing what the store holds, as a person at a terminal does it: `backout runs` (the id
kept whole at 80 columns, filters applied in SQL) and `backout snapshots SERVICE`. On
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from backout.cli import cli
from backout.store.db import Store
from backout.store.models import RunRow

LONG = "checkout-and-payments-gateway-of-the-shop"
GOOD = f"""plan: {LONG}
steps:
  - name: fine
    run: ['true']
"""
BAD = """plan: billing
steps:
  - name: breaks with a rather long explanation of what went wrong in it
    run: [sh, -c, 'exit 3']
"""
SNAPPED = """plan: web
baseline:
  release: {readlink: current}
  token: {file_hash: token.txt}
steps:
  - name: fine
    run: ['true']
"""


def invoke(url: str, *args: str, columns: int = 200) -> Result:
    return CliRunner().invoke(
        cli, ["--db", url, "--actor", "ci-bot", *args], obj={}, env={"COLUMNS": str(columns)}
    )


def run(url: str, folder: Path, text: str) -> str:
    path = folder / f"plan-{abs(hash(text))}.yaml"
    path.write_text(text)
    result = invoke(url, "run", str(path), "--json")
    return str(json.loads(result.stdout)["run_id"])


def test_the_run_id_stays_whole_at_80_columns(store_url: str, tmp_path: Path) -> None:
    ids = [run(store_url, tmp_path, GOOD), run(store_url, tmp_path, BAD)]
    for columns in (80, 60):
        table = invoke(store_url, "runs", columns=columns)
        assert table.exit_code == 0, table.output
        assert max(len(line) for line in table.output.splitlines()) <= columns
        for run_id in ids:
            assert run_id in table.output, table.output  # copyable: not cut, not wrapped


def test_runs_filters(store_url: str, tmp_path: Path) -> None:
    good = run(store_url, tmp_path, GOOD)
    bad = run(store_url, tmp_path, BAD)

    def listed(*args: str) -> list[str]:
        result = invoke(store_url, "runs", "--json", *args)
        assert result.exit_code == 0, result.output
        return [row["run_id"] for row in json.loads(result.stdout)]

    assert listed() == [bad, good]
    assert listed("--status", "failed") == [bad]
    assert listed("--status", "succeeded", "--service", LONG) == [good]
    assert listed("--service", "billing", "--status", "succeeded") == []
    assert listed("--limit", "1") == [bad]
    # --since: make the good run a week old, then ask for the last day, by duration and date
    with Store(store_url) as store, store.session() as session:
        row = session.get(RunRow, good)
        assert row is not None
        row.created_at = time.time() - 7 * 86400
    assert listed("--since", "1d") == [bad]
    assert listed("--since", "24h") == [bad]
    assert listed("--since", "8d") == [bad, good]
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    assert listed("--since", yesterday) == [bad]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "last tuesday"], "is neither a duration nor a date"),
        (["--since", "7 weeks"], "e.g. 30m, 12h, 7d"),
        (["--status", "done"], "'done' is not one of"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_runs_filters_exit_2(store_url: str, args: list[str], expected: str) -> None:
    result = invoke(store_url, "runs", *args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_snapshots_newest_first_and_one_s_values(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "current").symlink_to("releases/v1")
    (tmp_path / "token.txt").write_text("abc")
    plan = tmp_path / "plan.yaml"
    plan.write_text(SNAPPED)
    assert invoke(store_url, "snapshot", str(plan)).exit_code == 0
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("releases/v2")
    assert invoke(store_url, "snapshot", str(plan)).exit_code == 0

    listed = json.loads(invoke(store_url, "snapshots", "web", "--json").stdout)
    assert len(listed) == 2
    newest, oldest = listed
    assert newest["snapshot_id"] > oldest["snapshot_id"]
    assert newest["taken_at"] >= oldest["taken_at"]
    assert (newest["values_count"], newest["actor"], newest["plan"]) == (2, "ci-bot", "web")
    assert newest["source"] == "backout snapshot"
    assert newest["values"] is None  # values only with --show

    table = invoke(store_url, "snapshots", "web", columns=100)
    assert table.exit_code == 0
    lines = [line for line in table.output.splitlines() if "ci-bot" in line]
    assert [int(line.split()[1]) for line in lines] == [
        newest["snapshot_id"],
        oldest["snapshot_id"],
    ]

    shown = invoke(store_url, "snapshots", "web", "--show", str(oldest["snapshot_id"]))
    assert shown.exit_code == 0, shown.output
    assert "release = releases/v1" in shown.output
    shown_json = json.loads(
        invoke(store_url, "snapshots", "web", "--show", str(newest["snapshot_id"]), "--json").stdout
    )
    assert shown_json["values"]["release"] == "releases/v2"
    assert "_telemetry" not in shown_json["values"]


def test_snapshots_of_an_unknown_service_say_so(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "current").symlink_to("releases/v1")
    (tmp_path / "token.txt").write_text("abc")
    (tmp_path / "plan.yaml").write_text(SNAPPED)
    assert invoke(store_url, "snapshot", str(tmp_path / "plan.yaml")).exit_code == 0
    none = invoke(store_url, "snapshots", "wbe")
    assert none.exit_code == 0
    assert "no snapshots for service 'wbe' (services with snapshots: web)" in none.output
    assert json.loads(invoke(store_url, "snapshots", "wbe", "--json").stdout) == []
    missing = invoke(store_url, "snapshots", "web", "--show", "999")
    assert missing.exit_code == 2
    assert "no snapshot #999 of service 'web'" in missing.output
