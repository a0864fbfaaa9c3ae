"""User text is printed as it is: no emoji codes (``:100:``) and no rich markup."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from backout.cli import cli


def test_an_error_on_line_100_prints_its_line_number(tmp_path: Path) -> None:
    padding = "".join(f"# line {n}\n" for n in range(1, 97))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"{padding}plan: p\nsteps:\n  - name: s\n    rn: ['true']\n")
    result = CliRunner().invoke(cli, ["validate", str(plan)], obj={})
    assert result.exit_code == 2
    assert f"{plan}:100:5:" in result.output
    assert "💯" not in result.output


def test_markup_in_a_step_name_is_printed_literally(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("plan: p\nsteps:\n  - name: '[red]boom[/red] :fire:'\n    run: ['true']\n")
    db = f"sqlite:///{tmp_path / 'b.db'}"
    result = CliRunner().invoke(cli, ["--db", db, "run", str(plan)], obj={})
    assert result.exit_code == 0, result.output
    assert "[red]boom[/red] :fire:" in result.output
    assert "🔥" not in result.output
