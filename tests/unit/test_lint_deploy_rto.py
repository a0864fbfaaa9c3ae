"""The "worst case within rto" lint counts a deploy's undo steps: a backout of a deploy
first reverses the stages done so far, each reverse under its forward step's timeout and
retries (issue 7: a plan with `rto: 1m` and a 10-minute undo validated `--strict`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backout.plans import load_plan
from backout.spec.lint import lint

PLAN = """\
plan: shop
service: shop
owner: web
risk: low
rto: 1m
steps:
  - name: point current at the previous release
    symlink: {link: current, target: releases/v1}
    timeout: 5s
    idempotent: true
deploy:
  stages:
    - name: all traffic
      steps:
        - name: run the migration
          run: [./bin/migrate]
          timeout: STAGE_TIMEOUT
          UNDO
"""


def rto_warnings(write_plan: Callable[..., Path], timeout: str, undo: str) -> list[str]:
    text = PLAN.replace("STAGE_TIMEOUT", timeout).replace("UNDO", undo)
    issues = lint(load_plan(write_plan(text)))
    return [i.message for i in issues if i.message.startswith("worst case")]


@pytest.mark.parametrize(
    ("undo", "worst"),
    [
        ("undo: {run: [./bin/unmigrate]}", 605),  # the undo runs under the 10m timeout
        ("undo: {wait: 1s}", 605),
    ],
)
def test_an_undo_counts_under_its_forward_steps_timeout(
    write_plan: Callable[..., Path], undo: str, worst: int
) -> None:
    assert rto_warnings(write_plan, "10m", undo) == [
        f"worst case ({worst}s of timeouts and retries) exceeds rto (60s)"
    ]


def test_a_forward_step_without_a_reverse_is_not_counted(
    write_plan: Callable[..., Path],
) -> None:
    # the forward step itself is not part of the backout; with no undo nothing reverses it
    # (another lint asks for an undo), so only the plan's steps count
    assert rto_warnings(write_plan, "10m", "") == []


def test_a_short_undo_fits(write_plan: Callable[..., Path]) -> None:
    assert rto_warnings(write_plan, "30s", "undo: {run: [./bin/unmigrate]}") == []
