"""A template naming a baseline value of a plan that declares none gets a hint that says
so and shows how to add one, not an empty list of known values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backout.plans import load_plan
from backout.spec.lint import lint

PLAN = """\
plan: shop
steps:
  - name: switch
    symlink: {link: current, target: "{{ baseline.release }}"}
    timeout: 10s
    idempotent: true
"""


def test_no_baseline_at_all(write_plan: Callable[..., Path]) -> None:
    issues = [i for i in lint(load_plan(write_plan(PLAN))) if "baseline" in i.message]
    assert len(issues) == 1
    issue = issues[0]
    assert issue.message == "template uses baseline.release, but the plan has no `baseline:` values"
    assert issue.hint == (
        "add them, e.g. `baseline: {release: {readlink: releases/current}}`, "
        "and record them with `backout snapshot PLAN`"
    )
    assert "known" not in issue.hint
    assert "none declared" not in issue.hint
    assert (issue.field, issue.severity) == ("steps[0].symlink.target", "warning")


def test_a_baseline_without_that_key_lists_what_it_has(write_plan: Callable[..., Path]) -> None:
    text = PLAN.replace("steps:", "baseline:\n  version: {readlink: current}\nsteps:")
    issues = [i for i in lint(load_plan(write_plan(text))) if "baseline" in i.message]
    assert [i.message for i in issues] == [
        "template uses baseline.release, which `baseline:` does not define"
    ]
    assert issues[0].hint == "declare it under baseline: (known: version)"
