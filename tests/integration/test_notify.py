"""Notifications end to end on SQLite and PostgreSQL: a run queues one notice per (event,
channel) in its journal's transaction, `notify send` delivers them to stand-ins for
Slack, PagerDuty and a signed webhook, failures are retried (honouring Retry-After) or
dead-lettered, `notify test` tries each channel once, and no secret is ever stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backout import commands
from backout.errors import PlanError, UsageError
from backout.plans import load_plan
from backout.settings import Settings
from backout.store.models import OutboxRow
from tests.callers import caller
from tests.receivers import WEBHOOK_SECRET, notify_section, stand_ins

PD_KEY = "pd-routing-key-0123456789abcdef"
SECRETS = {"TEST_PD_KEY": PD_KEY, "TEST_HOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


DEFAULT_STEPS = '  - name: switch back\n    run: ["true"]'


def write_plan(folder: Path, url: str, steps: str = "", extra: str = "") -> Path:
    plan = folder / "plan.yaml"
    plan.write_text(
        f"""plan: notified
risk: high
secrets:
  pd_key: {{env: TEST_PD_KEY}}
  hook_secret: {{env: TEST_HOOK_SECRET}}
steps:
{steps or DEFAULT_STEPS}
"""
        + notify_section(url)
        + extra
    )
    return plan


def test_a_run_notifies_each_channel_once_per_event(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        plan = write_plan(tmp_path, receivers.url)
        who = caller(Settings(database_url=store_url))
        report = commands.run(who, plan)
        assert report.status == "succeeded"
        sent = commands.notify_send(who, timeout=30)
        assert (sent.sent, sent.pending, sent.dead) == (6, 0, 0)  # 2 events x 2 + 2 to pager
        assert receivers.refused == []
        hook = receivers.of("webhook")
        assert [r.body["type"] for r in hook] == ["run.started", "run.backed_out"]
        assert hook[1].body["data"]["run_id"] == report.run_id
        assert "notified: backed out in " in hook[1].body["data"]["title"]  # no verify: no claim
        assert hook[1].body["data"]["explain"] == f"backout explain {report.run_id}"
        pager = receivers.of("pagerduty")
        assert [r.body["event_action"] for r in pager] == ["trigger", "resolve"]
        assert {r.body["dedup_key"] for r in pager} == {report.run_id}
        slack = receivers.of("slack")
        assert len(slack) == 2
        assert "notified" in slack[0].body["text"]
        # a second send finds nothing: each delivery happened once
        again = commands.notify_send(who, timeout=1)
        assert again.sent == 0
        assert len(receivers.received) == 6
        delivered = commands.audit_log(who, action="outbox.delivered")
        assert len(delivered) == 6


def test_no_secret_is_stored_with_the_queued_notices(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        plan = write_plan(tmp_path, receivers.url)
        who = caller(Settings(database_url=store_url))
        commands.run(who, plan)
        with who.store.session() as session:
            stored = json.dumps([r.payload for r in session.query(OutboxRow).all()])
        assert PD_KEY not in stored
        assert WEBHOOK_SECRET not in stored
        assert "{{ secrets.pd_key }}" in stored  # the template, rendered only when sending
        assert '"env": "TEST_PD_KEY"' in stored


def test_retries_honour_retry_after_and_never_slow_the_backout(
    store_url: str, tmp_path: Path
) -> None:
    """The feed answers 500, then 429 with Retry-After: 2, then takes it: the run's own
    journal shows it finished long before the notice could go out; the notice arrived
    once, no sooner than the receiver asked."""
    with stand_ins() as receivers:
        receivers.script["webhook"] = [(500, {}), (429, {"Retry-After": "2"})]
        plan = write_plan(tmp_path, receivers.url)
        env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
        done = subprocess.run(
            [sys.executable, "-m", "backout", "run", str(plan), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        run = json.loads(done.stdout)
        who = caller(Settings(database_url=store_url))
        events = commands.journal(who, run["run_id"])
        finished = events[-1]
        assert finished.kind == "run_finished"
        run_took = finished.at - events[0].at
        hook = receivers.wait_for("webhook", 2)
        first = min(r.at for r in hook)
        failed = [e for e in commands.audit_log(who, action="outbox.failed")]
        assert len(failed) == 2  # the 500 and the 429, each audited
        throttled_at = failed[1].at
        assert first - throttled_at >= 2.0 - 0.05, "sent before the Retry-After wait"
        assert run_took < first - events[0].at - 2.0, "the backout waited for a channel"
        assert sorted(r.body["type"] for r in hook) == ["run.backed_out", "run.started"]
        assert len({r.key for r in hook}) == len(hook) == 2


def test_a_permanent_error_is_dead_lettered_and_can_be_retried(
    store_url: str, tmp_path: Path
) -> None:
    with stand_ins() as receivers:
        receivers.script["pagerduty"] = [(400, {})]
        plan = write_plan(tmp_path, receivers.url)
        who = caller(Settings(database_url=store_url))
        commands.run(who, plan)
        report = commands.notify_send(who, timeout=10)
        assert report.dead == 1
        assert report.pending == 0
        dead = commands.outbox_list(who, status="dead")
        assert [d.route for d in dead] == ["notify:pager"]
        assert commands.audit_log(who, action="outbox.dead")
        requeued = commands.outbox_retry(who, [], dead=True)
        assert [r.id for r in requeued] == [dead[0].id]
        assert commands.audit_log(who, action="outbox.requeued")
        again = commands.notify_send(who, timeout=10)
        assert (again.sent, again.dead) == (1, 0)
        assert len(receivers.of("pagerduty")) == 2


def test_notify_test_tries_each_channel_once(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        plan = write_plan(tmp_path, receivers.url)
        text = plan.read_text().replace(f"{receivers.url}/slack", "http://127.0.0.1:9/slack")
        plan.write_text(text)
        who = caller(Settings(database_url=store_url))
        commands.run(who, plan)  # real notices queued and left for later
        report = commands.notify_test(who, plan, timeout=10)
        verdicts = {r.channel: (r.ok, r.error) for r in report.results}
        assert verdicts["feed"] == (True, "")
        assert verdicts["pager"] == (True, "")
        assert verdicts["chat"][0] is False
        assert verdicts["chat"][1]
        assert report.exit_code == 1
        assert receivers.of("webhook")[0].body["data"]["test"] is True
        # the run's own notices were not touched by the test
        queued = commands.outbox_list(who, route="notify:feed")
        assert {q.status for q in queued} == {"pending"}
        with pytest.raises(UsageError, match="no channel named 'nope'"):
            commands.notify_test(who, plan, ["nope"])


def test_a_message_template_replaces_the_text(store_url: str, tmp_path: Path) -> None:
    extra = (
        "  messages:\n"
        '    run.backed_out: "{{ run.service }} is back on {{ notice.status }} (took '
        '{{ event.elapsed_s }}s)"\n'
        '    run.started: "{{ event.nothing.x }}"\n'
    )
    with stand_ins() as receivers:
        plan = write_plan(tmp_path, receivers.url, extra=extra)
        who = caller(Settings(database_url=store_url))
        commands.run(who, plan)
        commands.notify_send(who, timeout=10)
        texts = {r.body["type"]: r.body["data"]["text"] for r in receivers.of("webhook")}
        assert texts["run.backed_out"].startswith("notified is back on succeeded (took ")
        assert "the plan's message template failed" in texts["run.started"]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "notify:\n  channels: {a: {webhook: {url: 'http://x', secrets: [k]}}}\n"
            "  routes: [{events: [run.failed], to: [b]}]\n",
            "no channel named 'b'",
        ),
        (
            "notify:\n  channels: {a: {webhook: {url: 'http://x', secrets: [k]}}}\n"
            "  routes: [{events: [run.exploded], to: [a]}]\n",
            "unknown notify event 'run.exploded'",
        ),
        (
            "notify:\n  channels: {a: {servicenow: {url: 'http://x'}}}\n",
            "takes change records, not notifications",
        ),
        ("notify:\n  channels: {a: {pagerduty: {}}}\n", "routing_key"),
        ("notify:\n  channels: {a: {slak: {}}}\n", "did you mean 'slack'"),
    ],
)
def test_bad_notify_sections_are_plan_errors(tmp_path: Path, section: str, expected: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("plan: p\nsteps:\n  - name: s\n    run: ['true']\n" + section)
    with pytest.raises(PlanError) as caught:
        load_plan(plan)
    text = "\n".join(f"{i.line}: {i.field} {i.message} {i.hint}" for i in caught.value.issues)
    assert expected in text
    assert all(i.line >= 5 for i in caught.value.issues)  # pointed at the notify section


def test_validate_checks_what_notify_templates_read(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: p\nsecrets: {slack_url: {env: U}}\nsteps:\n  - name: s\n    run: ['true']\n"
        "environments: {staging: {}}\n"
        "notify:\n"
        "  channels:\n"
        "    a: {slack: {webhook_url: '{{ secrets.slak_url }}'}}\n"
        "    idle: {slack: {webhook_url: 'https://hooks.example.com/x'}}\n"
        "  routes: [{events: ['*'], to: [a], environments: [prod]}]\n"
        "  messages: {run.failed: '{{ nonsense.x }}'}\n"
    )
    issues = commands.validate([plan])[str(plan)]
    text = "\n".join(f"{i.line}:{i.field}: {i.message} ({i.hint})" for i in issues)
    assert "9:notify.channels.a.slack.webhook_url: template uses secrets.slak_url" in text
    assert "did you mean 'slack_url'?" in text
    assert "channel 'idle' is in no route" in text
    assert "route names environment 'prod'" in text
    assert "notify.messages.run.failed: template uses unknown name 'nonsense'" in text


def test_templated_channel_options_load(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: p\nsecrets: {u: {env: U}}\nsteps:\n  - name: s\n    run: ['true']\n"
        "notify:\n  channels: {a: {slack: {webhook_url: '{{ secrets.u }}'}}}\n"
        "  routes: [{events: ['*'], to: [a]}]\n"
    )
    notify = load_plan(plan).plan.notify
    assert notify is not None
    assert notify.channels["a"].kind == "slack"


def test_a_change_record_notifies_approved_started_and_closed(
    store_url: str, tmp_path: Path
) -> None:
    """A change's moves go to the routes of change.* (queued with the move, keyed by its
    audit record), through the plan's channels, to the stand-in receiver."""
    from tests.integration.change_helpers import OPEN_POLICY, PLAN, create_change, invoke, write

    with stand_ins() as receivers:
        section = (
            "secrets:\n  hook_secret: {env: TEST_HOOK_SECRET}\n"
            "notify:\n  channels:\n    feed:\n      webhook:\n"
            f"        url: {receivers.url}/hook\n"
            "        secrets: ['{{ secrets.hook_secret }}']\n"
            "  routes:\n    - events: [change.approved, change.started, change.closed]\n"
            "      to: [feed]\n"
        )
        plan = write(tmp_path / "plan.yaml", PLAN + section)
        policy = write(tmp_path / "policy.yaml", OPEN_POLICY)
        change_id = create_change(store_url, plan, "--risk", "low")
        approved = invoke(
            store_url, "change", "approve", str(change_id), "--policy", policy, actor="bob"
        )
        assert approved.exit_code == 0, approved.output
        ran = invoke(store_url, "run", plan, "--change", str(change_id), actor="bob")
        assert ran.exit_code == 0, ran.output
        commands.notify_send(caller(Settings(database_url=store_url)), timeout=20)
        got = [(r.body["type"], r.body["data"]["status"]) for r in receivers.of("webhook")]
        assert got == [
            ("change.approved", "approved"),
            ("change.started", "in_progress"),
            ("change.closed", "backed_out"),
        ]
        first = receivers.of("webhook")[0].body["data"]
        assert first["explain"] == f"backout change show {change_id}"
        assert ("Change", str(change_id)) in [tuple(f) for f in first["fields"]]


def test_organisation_defaults_from_the_config_file_notify_a_plan_without_notify(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[notify] in backout.toml: a plan with no notify: section is told through the
    organisation's channel; a plan's own channel of the same name would win."""
    from backout.commands import Caller

    with stand_ins() as receivers:
        (tmp_path / "backout.toml").write_text(
            f'database_url = "{store_url}"\n'
            "[notify.channels.org-feed]\n"
            f'webhook = {{url = "{receivers.url}/hook", secrets = ["{{{{ env.ORG_HOOK }}}}"]}}\n'
            "[[notify.routes]]\n"
            'events = ["run.backed_out"]\n'
            'to = ["org-feed"]\n'
        )
        monkeypatch.setenv("ORG_HOOK", WEBHOOK_SECRET)
        plan = tmp_path / "plan.yaml"
        plan.write_text("plan: plain\nsteps:\n  - name: s\n    run: ['true']\n")
        settings = Settings.load(cwd=tmp_path)
        who = Caller.of(settings)
        try:
            report = commands.run(who, plan)
            commands.notify_send(who, timeout=20)
        finally:
            who.store.dispose()
        got = receivers.of("webhook")
        assert [r.body["type"] for r in got] == ["run.backed_out"]
        assert got[0].body["data"]["run_id"] == report.run_id


def test_a_claim_left_by_a_dead_sender_is_taken_over_at_once(
    store_url: str, tmp_path: Path
) -> None:
    """A sender killed mid-delivery leaves its row `sending` for 30 s; a sender on the
    same host sees the claimer is gone and delivers at once (same key: the receiver drops
    a repeat). A claim of another host's sender is left to expire."""
    import subprocess
    import time as clock

    from backout import proc
    from backout.store.models import OutboxRow

    with stand_ins() as receivers:
        who = caller(Settings(database_url=store_url))
        commands.run(who, write_plan(tmp_path, receivers.url))
        dead = subprocess.Popen(["true"])
        dead.wait()
        host, boot = proc.this_host()
        with who.store.session() as session:
            rows = session.query(OutboxRow).filter(OutboxRow.route == "notify:feed").all()
            gone, elsewhere = rows[0], rows[1]
            for row, owner in (
                (gone, f"{host}|{boot}|{dead.pid}|1"),
                (elsewhere, f"another-host|x|{dead.pid}|1"),
            ):
                row.status, row.claimed_by = "sending", owner
                row.next_attempt_at = clock.time() + 30
        commands.notify_send(who, timeout=1, once=True)
        arrived = {r.key for r in receivers.of("webhook")}
        assert gone.key in arrived
        assert elsewhere.key not in arrived  # its stream waits for the claim to expire


def test_the_claimer_migration_goes_up_and_down(store_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    from backout.store.db import HEAD_REVISION, Store, _alembic_config

    store = Store(store_url)
    try:
        store.open()
        assert store.revision() == HEAD_REVISION

        def columns() -> set[str]:
            return {c["name"] for c in sa.inspect(store.engine).get_columns("outbox")}

        assert "claimed_by" in columns()
        config = _alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0008")
        assert "claimed_by" not in columns()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        assert "claimed_by" in columns()
    finally:
        store.dispose()
