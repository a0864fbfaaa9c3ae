"""``backout change show`` lists the plan's newest rehearsals, and for a plan drilled many
times says how many earlier ones there are and the command that lists them all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from backout.cli import cli

PLAN = """\
plan: shop
steps:
  - name: switch back
    symlink: {link: current, target: releases/v1}
    timeout: 10s
    idempotent: true
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "backout.yaml").write_text(PLAN)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--actor", "alice@example.com", *args], obj={})


def drilled(times: int) -> None:
    """A change of the plan, and ``times`` drills of it recorded one minute apart."""
    created = invoke("change", "create", "--plan", "backout.yaml", "--title", "t")
    assert created.exit_code == 0, created.output
    with sqlite3.connect(".backout/backout.db") as db:
        for n in range(times):
            db.execute(
                "INSERT INTO rehearsals (plan, plan_version, outcome, duration_s, at, message,"
                " phases, faults) VALUES ('shop', 'v', ?, ?, ?, '', '{}', '[]')",
                ["succeeded" if n % 2 else "failed", 1.0 + n, 1_800_000_000.0 + 60 * n],
            )


def rehearsal_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if "rehearsal" in line]


def test_a_few_drills_are_all_listed() -> None:
    drilled(5)
    shown = invoke("change", "show", "1")
    assert shown.exit_code == 0, shown.output
    lines = rehearsal_lines(shown.output)
    assert [line.split()[:2] for line in lines] == [["rehearsal", str(n)] for n in (5, 4, 3, 2, 1)]
    assert "lists them all" not in shown.output


def test_many_drills_show_the_newest_five_and_how_to_list_the_rest() -> None:
    drilled(12)
    shown = invoke("change", "show", "1")
    assert shown.exit_code == 0, shown.output
    lines = rehearsal_lines(shown.output)
    assert [line.split()[:2] for line in lines[:5]] == [
        ["rehearsal", str(n)] for n in (12, 11, 10, 9, 8)
    ]
    assert lines[5:] == [
        "and 7 earlier rehearsals: `backout rehearsals --plan shop --limit 12` lists them all"
    ]
    listed = invoke("rehearsals", "--plan", "shop", "--limit", "12", "--json")
    assert listed.exit_code == 0, listed.output
    assert listed.output.count('"plan": "shop"') == 12
    # the JSON report carries the newest ten and the count
    report = invoke("change", "show", "1", "--json")
    assert '"rehearsals_total": 12' in report.output


def test_one_earlier_drill_is_singular() -> None:
    drilled(6)
    lines = rehearsal_lines(invoke("change", "show", "1").output)
    assert lines[-1] == (
        "and 1 earlier rehearsal: `backout rehearsals --plan shop --limit 6` lists them all"
    )
