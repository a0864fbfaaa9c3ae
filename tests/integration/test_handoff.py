"""The hand-off to disaster recovery, on SQLite and PostgreSQL: a backout that fails pages
the DR owner (a `dr.handoff` notice mentioning them on the plan's `page` channels), and with
`auto: true` starts the recovery plan — only when its own gate passes — linking the two
runs in the audit trail, the recovery run and `backout explain`."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout import commands
from backout.errors import PlanError
from backout.plans import load_plan
from backout.settings import Settings
from tests.callers import caller
from tests.receivers import WEBHOOK_SECRET, stand_ins


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", WEBHOOK_SECRET)


def failing_plan(folder: Path, url: str, auto: bool, recovery: str = "recover.yaml") -> Path:
    plan = folder / "shop.yaml"
    plan.write_text(
        f"""plan: shop
secrets:
  hook_secret: {{env: TEST_HOOK_SECRET}}
steps:
  - name: switch back
    run: ["false"]
disaster_recovery:
  owner: dr-team
  runbook: https://wiki.example.com/shop/dr
  plan: {recovery}
  auto: {"true" if auto else "false"}
  page: [dr-hook]
notify:
  channels:
    dr-hook:
      webhook: {{url: "{url}/hook", secrets: ["{{{{ secrets.hook_secret }}}}"]}}
  contacts:
    dr-team: {{dr-hook: "@dr-oncall"}}
"""
    )
    return plan


def recovery_plan(folder: Path, risk: str = "low", step: str = "true") -> Path:
    plan = folder / "recover.yaml"
    plan.write_text(
        f"""plan: shop-recover
service: shop
risk: {risk}
steps:
  - name: restore from last night's backup
    run: ["sh", "-c", "{step} && touch {folder}/restored"]
"""
    )
    return plan


def test_a_failed_backout_starts_its_recovery_plan(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        recovery_plan(tmp_path)
        who = caller(Settings(database_url=store_url))
        report = commands.run(who, failing_plan(tmp_path, receivers.url, auto=True))
        assert report.status == "failed"
        assert report.exit_code == 1
        handoff = report.handoff
        assert handoff is not None
        assert handoff.started
        assert handoff.recovery_status == "succeeded"
        assert (tmp_path / "restored").exists()
        recovery = commands.status(who, str(handoff.recovery_run))
        assert recovery.plan == "shop-recover"
        _, lines = commands.explain_run(who, report.run_id)
        assert any(f"started recovery run {handoff.recovery_run}" in line for line in lines)
        _, recovery_lines = commands.explain_run(who, str(handoff.recovery_run))
        assert f"took over from failed run {report.run_id}" in recovery_lines[1]
        record = commands.audit_log(who, action="run.handoff")
        assert record[0].subject == f"run:{report.run_id}"
        assert record[0].details["recovery_run"] == handoff.recovery_run
        commands.notify_send(who, timeout=20)
        paged = receivers.of("webhook")
        assert [r.body["type"] for r in paged] == ["dr.handoff"]
        assert paged[0].body["data"]["mentions"] == ["@dr-oncall"]
        assert "https://wiki.example.com/shop/dr" in paged[0].body["data"]["text"]
        assert paged[0].body["data"]["severity"] == "critical"


def test_a_recovery_plan_whose_gate_fails_is_not_started(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        recovery_plan(tmp_path, risk="high")  # the default policy wants a drill for high risk
        who = caller(Settings(database_url=store_url))
        report = commands.run(who, failing_plan(tmp_path, receivers.url, auto=True))
        assert report.handoff is not None
        assert not report.handoff.started
        assert "not started: a drill of the recovery plan is due" in report.handoff.outcome
        assert not (tmp_path / "restored").exists()
        assert len(commands.runs(who)) == 1


def test_without_auto_the_owner_is_told_and_nothing_starts(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        recovery_plan(tmp_path)
        who = caller(Settings(database_url=store_url))
        report = commands.run(who, failing_plan(tmp_path, receivers.url, auto=False))
        assert report.handoff is not None
        assert report.handoff.outcome == "auto is off: the owner starts recovery"
        assert len(commands.runs(who)) == 1


def test_a_failing_recovery_run_does_not_chain(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        recovery_plan(tmp_path, step="false")
        who = caller(Settings(database_url=store_url))
        report = commands.run(who, failing_plan(tmp_path, receivers.url, auto=True))
        assert report.handoff is not None
        assert report.handoff.recovery_status == "failed"
        assert len(commands.runs(who)) == 2  # the backout and one recovery run, no more


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("disaster_recovery: {owner: x, auto: true}\n", "`auto: true` starts `plan:`"),
        ("disaster_recovery: {owner: x, page: [nope]}\n", "no channel named 'nope'"),
    ],
)
def test_bad_disaster_recovery_sections(tmp_path: Path, section: str, expected: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("plan: p\nsteps:\n  - name: s\n    run: ['true']\n" + section)
    with pytest.raises(PlanError, match=expected):
        load_plan(plan)
