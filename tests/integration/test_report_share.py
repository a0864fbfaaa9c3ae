"""`backout report RUN --attach --share`, on SQLite and PostgreSQL: the report's Markdown is
queued for the ITSM tool as a note on the run's change record (a ServiceNow work note, a
Jira comment), the channels routed `run.report` are told with the link, both audited; a
run with no change record cannot be attached, and says how to link one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backout import commands
from backout.channels.itsm import jira, servicenow
from backout.channels.notice import Notice
from backout.channels.pagerduty import is_change
from backout.settings import Settings
from backout.store.models import OutboxRow
from tests.callers import caller
from tests.integration.change_helpers import (
    OPEN_POLICY,
    PLAN,
    audit_records,
    create_change,
    invoke,
    outbox_rows,
    write,
)
from tests.receivers import WEBHOOK_SECRET, stand_ins

REPORT_URL = "https://wiki.example/postmortems/web"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", WEBHOOK_SECRET)


def test_a_report_goes_to_the_change_record_and_the_channels(
    store_url: str, tmp_path: Path
) -> None:
    with stand_ins() as receivers:
        section = (
            "secrets:\n  hook_secret: {env: TEST_HOOK_SECRET}\n"
            "notify:\n  channels:\n    feed:\n      webhook:\n"
            f"        url: {receivers.url}/hook\n"
            "        secrets: ['{{ secrets.hook_secret }}']\n"
            "  routes:\n    - events: [run.report]\n      to: [feed]\n"
        )
        plan = write(tmp_path / "plan.yaml", PLAN + section)
        policy = write(tmp_path / "policy.yaml", OPEN_POLICY)
        change_id = create_change(store_url, plan, "--risk", "low")
        approved = invoke(
            store_url, "change", "approve", str(change_id), "--policy", policy, actor="bob"
        )
        assert approved.exit_code == 0, approved.output
        ran = invoke(store_url, "run", plan, "--change", str(change_id), "--json", actor="bob")
        assert ran.exit_code == 0, ran.output
        run_id = json.loads(ran.output)["run_id"]

        shared = invoke(
            store_url, "report", run_id[:8], "--attach", "--share", "--url", REPORT_URL, "--json"
        )
        assert shared.exit_code == 0, shared.output
        answer = json.loads(shared.output)
        assert answer["attached_to_change"] == change_id
        assert answer["told"] == ["feed"]

        # the ITSM note is the report itself
        [note] = [r for r in outbox_rows(store_url) if r["event"] == "report"]
        who = caller(Settings(database_url=store_url))
        with who.store.session() as session:
            row = session.get(OutboxRow, note["id"])
            assert row is not None
            payload = row.payload
        body = payload["body"]
        assert body.startswith("# ")
        assert run_id in body
        assert answer["journal_sha256"] in body  # the seal travels with it
        assert payload["details"]["url"] == REPORT_URL
        assert servicenow(payload, "sys-1").body == {"work_notes": body}
        assert jira(payload, "CHG-1", "CHG").body == {"body": body}

        # both are audited
        attached = audit_records(store_url, "--action", "change.report")
        assert [a["details"]["run"] for a in attached] == [run_id]
        told = audit_records(store_url, "--action", "run.report_shared")
        assert told[0]["details"]["journal_sha256"] == answer["journal_sha256"]

        commands.notify_send(who, timeout=20)
        [message] = receivers.of("webhook")
        assert message.body["type"] == "run.report"
        assert REPORT_URL in message.body["data"]["text"]


def test_a_run_without_a_change_cannot_be_attached(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    ran = invoke(store_url, "run", plan, "--json")
    run_id = json.loads(ran.output)["run_id"]
    refused = invoke(store_url, "report", run_id, "--attach")
    assert refused.exit_code == 2
    assert "belongs to no change record" in refused.output
    assert "--change ID" in refused.output
    assert [r for r in outbox_rows(store_url) if r["event"] == "report"] == []
    # --share with no route tells nobody, and says so
    shared = invoke(store_url, "report", run_id, "--share")
    assert shared.exit_code == 0, shared.output
    assert "no channel routes run.report" in shared.output
    assert invoke(store_url, "report", run_id, "--url", REPORT_URL).exit_code == 2


def test_a_report_pages_no_one() -> None:
    notice = Notice(
        event="run.report",
        title="post-incident report drafted",
        text="",
        severity="info",
        run_id="3f9c2a1b7d04",
        service="web",
    )
    assert is_change(notice)  # PagerDuty shows it among the service's changes
