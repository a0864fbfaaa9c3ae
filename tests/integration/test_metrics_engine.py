"""Runs made by the real engine (a promoted deploy, a deploy a trigger backs out, a
watch, a plain backout, a rehearsal drill) are counted by `backout metrics` as their
reports say: the outcome the figures derive from the journal agrees with each run's
RunReport.result, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

from backout import commands
from backout.commands.metrics import metrics
from backout.metrics import Window
from backout.settings import Settings
from tests.callers import caller

PLAN = """\
plan: shop
service: shop
owner: payments
risk: high
rto: 30s
telemetry:
  bad:
    command: {argv: [sh, -c, 'if grep -q bad current/VERSION; then echo 1; else echo 0; fi']}
    interval: 100ms
triggers:
  - name: bad release
    signal: bad
    threshold: {above: 0.5}
    on_no_data: ignore
deploy:
  stages:
    - name: everyone
      steps:
        - name: ship
          symlink: {link: current, target: "releases/{{ run.release }}"}
      hold: 1500ms
steps:
  - name: switch back
    symlink: {link: current, target: releases/good}
    timeout: 5s
verify:
  - name: good release live
    command: {argv: [cat, current/VERSION], contains: good}
rehearsal:
  break:
    - name: ship the bad build
      symlink: {link: current, target: releases/bad}
      undo: {symlink: {link: current, target: releases/good}}
  detect_within: 10s
"""


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="release-bot", lease_ttl=5.0)


def layout(folder: Path) -> Path:
    for release in ("good", "bad"):
        (folder / "releases" / release).mkdir(parents=True)
        (folder / "releases" / release / "VERSION").write_text(release + "\n")
    (folder / "current").symlink_to("releases/good")
    plan = folder / "plan.yaml"
    plan.write_text(PLAN)
    return plan


def test_engine_runs_are_counted_as_their_reports_say(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    me = caller(settings(store_url))
    promoted = commands.deploy(me, plan, release="good")
    backed_out = commands.deploy(me, plan, release="bad")
    watched = commands.watch(me, plan, seconds=0.5)
    manual = commands.run(me, plan)
    drill = commands.rehearse(me, plan)
    assert (promoted.result, backed_out.result, watched.result) == (
        "promoted",
        "backed_out",
        "healthy",
    )
    assert manual.status == "succeeded"
    assert drill.passed, drill.message

    report = metrics(me, Window(time.time() - 3600, time.time() + 1))
    outcomes = {r.run_id: r.outcome for r in report.data.runs}
    assert outcomes == {
        promoted.run_id: "promoted",
        backed_out.run_id: "backed_out",
        watched.run_id: "healthy",
        manual.run_id: "backed_out",
        drill.run.run_id: "rehearsed",
    }
    f = report.figures
    assert (f.stability.deployments, f.stability.failed_deployments) == (3, 1)
    assert f.stability.change_failure_rate == round(1 / 3, 6)
    assert (f.unplanned_backouts, f.unplanned_restored) == (1, 1)
    assert (f.rehearsals.total, f.rehearsals.passed) == (1, 1)
    assert f.rehearsals.plans[0].days_since_pass is not None

    # the recovery is the journal's own span: deploy start -> run_finished
    events = commands.journal(me, backed_out.run_id)
    started = next(e.at for e in events if e.kind == "run_started")
    fired = next(e.at for e in events if e.kind == "trigger_fired")
    finished = events[-1].at
    assert f.stability.recovery_deploy.median_s == round(finished - started, 3)
    assert f.stability.recovery_detection.median_s == round(finished - fired, 3)
    assert f.stability.time_to_detect.median_s == round(fired - started, 3)
    by_run = {r.run_id: r for r in report.data.runs}
    assert by_run[backed_out.run_id].triggers >= 1
    assert by_run[drill.run.run_id].is_deployment is False
