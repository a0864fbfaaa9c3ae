"""Lint rules of the `rehearsal:` section: each fires on its own problem, at its place in
the file, and stays quiet otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from backout.cli import cli
from backout.errors import Issue, PlanError
from backout.plans import load_plan
from backout.spec.lint import lint

WritePlan = Callable[..., Path]

# low risk, so only the rehearsal rules can speak
CLEAN = """\
plan: shop
steps:
  - name: switch back
    symlink: {link: current, target: releases/good}
    timeout: 5s
verify:
  - name: good release live
    command: {argv: [cat, current/VERSION], contains: good}
telemetry:
  bad:
    command: {argv: [sh, -c, 'grep -c bad current/VERSION || true']}
    interval: 200ms
triggers:
  - name: bad release
    signal: bad
    threshold: {above: 0.5}
    on_no_data: ignore
rehearsal:
  break:
    - name: ship the bad build
      symlink: {link: current, target: releases/bad}
      undo: {symlink: {link: current, target: releases/good}}
  detect_within: 10s
  faults:
    - fail_first: {step: switch back}
    - slow: {step: switch back, by: 1s}
    - fail_check: {check: good release live}
"""


def lint_text(write_plan: WritePlan, text: str) -> list[Issue]:
    return lint(load_plan(write_plan(text)))


def test_clean_rehearsal_has_no_issues(write_plan: WritePlan) -> None:
    assert lint_text(write_plan, CLEAN) == []


@pytest.mark.parametrize(
    ("kind", "old", "new", "line", "col", "field", "message", "hint"),
    [
        (
            "step",
            "slow: {step: switch back, by: 1s}",
            "slow: {step: switch bak, by: 1s}",
            26,
            14,
            "rehearsal.faults[1].slow.step",
            "fault 'slow' names no step of this plan: 'switch bak'",
            "steps: switch back",
        ),
        (
            "check",
            "fail_check: {check: good release live}",
            "fail_check: {check: good release}",
            27,
            20,
            "rehearsal.faults[2].fail_check.check",
            "fault 'fail_check' names no check of this plan: 'good release'",
            "checks: good release live",
        ),
    ],
)
def test_fault_naming_what_the_plan_lacks_is_an_error_at_its_line(
    write_plan: WritePlan,
    kind: str,
    old: str,
    new: str,
    line: int,
    col: int,
    field: str,
    message: str,
    hint: str,
) -> None:
    path = write_plan(CLEAN.replace(old, new))
    issues = lint(load_plan(path))
    assert [(i.line, i.col, i.field, i.message, i.hint, i.severity) for i in issues] == [
        (line, col, field, message, hint, "error")
    ]
    assert str(issues[0]).startswith(f"{path}:{line}:{col}: {field}: ")
    assert CLEAN.replace(old, new).splitlines()[line - 1].strip() == f"- {new}"


def test_fault_target_error_fails_validate_with_file_and_line(
    write_plan: WritePlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_plan(CLEAN.replace("fail_first: {step: switch back}", "fail_first: {step: restart}"))
    result = CliRunner().invoke(cli, ["validate", "plan.yaml"], obj={})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()  # one issue, on one line
    assert line.startswith("error: ")
    assert line.endswith(
        "plan.yaml:25:20: rehearsal.faults[0].fail_first.step: fault 'fail_first' names no "
        "step of this plan: 'restart' (steps: switch back)"
    )


def test_unknown_fault_kind_is_a_load_error_at_its_line(write_plan: WritePlan) -> None:
    path = write_plan(CLEAN.replace("fail_first: {step", "fail_fast: {step"))
    with pytest.raises(PlanError) as raised:
        load_plan(path)
    (issue,) = raised.value.issues
    assert (issue.line, issue.field) == (25, "rehearsal.faults[0].fail_fast")
    assert issue.message == "unknown fault 'fail_fast'"
    assert issue.hint == "did you mean 'fail_first'?"


def test_break_step_without_undo_warns(write_plan: WritePlan) -> None:
    """A symlink reverses itself (the drill points it back); a `run` step does not."""
    no_undo = CLEAN.replace("      undo: {symlink: {link: current, target: releases/good}}\n", "")
    assert lint_text(write_plan, no_undo) == []
    text = no_undo.replace(
        "      symlink: {link: current, target: releases/bad}\n",
        "      run: [ln, -sfn, releases/bad, current]\n",
    )
    issues = lint_text(write_plan, text)
    assert [(i.line, i.field, i.severity) for i in issues] == [
        (20, "rehearsal.break[0]", "warning")
    ]
    assert issues[0].message == (
        "break step 'ship the bad build' has no `undo:` and run has no reverse: a drill "
        "whose backout fails could leave the service broken"
    )
    assert "undo:" in issues[0].hint


def test_rehearsal_without_triggers_warns(write_plan: WritePlan) -> None:
    text = CLEAN.split("telemetry:")[0] + "rehearsal:" + CLEAN.split("rehearsal:")[1]
    issues = lint_text(write_plan, text)
    assert [(i.line, i.field, i.severity) for i in issues] == [(9, "rehearsal", "warning")]
    assert issues[0].message == "the plan has no `triggers:`: a drill can only be detected by hand"
    assert "--trigger manual" in issues[0].hint


def test_plan_without_rehearsal_has_no_rehearsal_issues(write_plan: WritePlan) -> None:
    """No triggers and no rehearsal: nothing to say about drills."""
    text = CLEAN.split("telemetry:")[0]
    assert lint_text(write_plan, text) == []
