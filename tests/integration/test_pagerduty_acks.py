"""A PagerDuty acknowledgement takes the run: PagerDuty's V3 webhook `incident.acknowledged`,
signed, for the incident a run raised (incident_key = the run id), received by
`backout notify receive`, on SQLite and PostgreSQL. The PagerDuty side is a stand-in: the
test signs and POSTs what PagerDuty's documentation shows it sends.

Checked: the ack is audited with PagerDuty's event id and stops escalation; the run's other
channels are told, its PagerDuty channel is not (it knows); a re-delivered event, or an ack
of a run someone already took, records nothing more; a bad or missing signature is refused
401 and a body that is not a webhook 400, recording nothing; other event types and
incidents not raised by a run are answered 200 and ignored (PagerDuty would retry a 4xx)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from backout import commands
from backout.notify import run_timers
from backout.notify.pagerduty_acks import sign, signature_ok
from backout.settings import Settings
from tests.callers import caller
from tests.receivers import WEBHOOK_SECRET, stand_ins
from tests.services import free_port

PD_SECRET = "pd-subscription-secret"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("TEST_PD_KEY", "R0UT1NGKEY")


def write_plan(folder: Path, url: str) -> Path:
    plan = folder / "plan.yaml"
    plan.write_text(
        f"""plan: paged
secrets:
  hook_secret: {{env: TEST_HOOK_SECRET}}
  pd_key: {{env: TEST_PD_KEY}}
steps:
  - name: switch back
    run: ["false"]
notify:
  channels:
    pager:
      pagerduty: {{routing_key: "{{{{ secrets.pd_key }}}}", url: "{url}/pd"}}
    feed:
      webhook: {{url: "{url}/hook", secrets: ["{{{{ secrets.hook_secret }}}}"]}}
  routes:
    - events: [run.failed, run.acknowledged]
      to: [feed, pager]
  contacts:
    lead: {{feed: "@alice"}}
  escalation:
    - after: 0s
      roles: [lead]
      to: [feed]
"""
    )
    return plan


def webhook(run_id: str, event_id: str, kind: str = "incident.acknowledged") -> bytes:
    """A V3 webhook as PagerDuty's docs show it (docs/webhooks/01-Overview.md)."""
    return json.dumps(
        {
            "event": {
                "id": event_id,
                "event_type": kind,
                "resource_type": "incident",
                "occurred_at": "2026-11-30T10:00:00.000Z",
                "agent": {"id": "PLH1HKV", "summary": "Dana Oncall", "type": "user_reference"},
                "client": {"name": "PagerDuty"},
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "status": "acknowledged",
                    "incident_key": run_id,
                    "title": "shop: backout failed",
                },
            }
        }
    ).encode()


def post(url: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    return httpx.post(url, content=body, headers=headers, timeout=30)


def test_signatures_follow_pagerdutys_rules() -> None:
    body = b'{"event": {}}'
    good = sign(body, "new-secret")
    assert signature_ok(body, good, ["new-secret"])
    # during a rotation PagerDuty sends one v1= per secret, comma-separated
    assert signature_ok(body, f"{sign(body, 'old-secret')},{good}", ["new-secret"])
    assert not signature_ok(body, good, ["another-secret"])
    assert not signature_ok(body + b" ", good, ["new-secret"])  # the raw body is signed
    assert not signature_ok(body, good.replace("v1=", "v0="), ["new-secret"])
    assert not signature_ok(body, None, ["new-secret"])


@pytest.fixture
def receiver(store_url: str, tmp_path: Path) -> Any:
    """`backout notify receive` as a user starts it, in its own process group."""
    port = free_port()
    env = {
        **os.environ,
        "BACKOUT_DATABASE_URL": store_url,
        "BACKOUT_PAGERDUTY_WEBHOOK_SECRET": PD_SECRET,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "backout", "notify", "receive", "--listen", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()  # waits for the receiver's first line
    assert f"receiving PagerDuty webhooks at http://127.0.0.1:{port}/pagerduty" in ready, (
        ready + proc.stderr.read() if proc.stderr else ready
    )
    try:
        yield f"http://127.0.0.1:{port}/pagerduty", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def test_an_acknowledgement_in_pagerduty_takes_the_run(
    store_url: str, tmp_path: Path, receiver: Any
) -> None:
    url, proc = receiver
    with stand_ins() as receivers:
        who = caller(Settings(database_url=store_url, actor="ops-bot"))
        report = commands.run(who, write_plan(tmp_path, receivers.url))
        assert report.status == "failed"
        failed_at = commands.journal(who, report.run_id)[-1].at

        # refused, and nothing recorded: no signature, a wrong one, a body that is not JSON
        body = webhook(report.run_id, "evt-1")
        assert post(url, body, None).status_code == 401
        assert post(url, body, sign(body, "not-the-secret")).status_code == 401
        assert post(url, b"nope", sign(b"nope", PD_SECRET)).status_code == 400
        # answered 200 and ignored: another event type, an incident no run raised
        other = webhook(report.run_id, "evt-0", kind="incident.annotated")
        assert "ignored" in post(url, other, sign(other, PD_SECRET)).json()["message"]
        stranger = webhook("not-a-run", "evt-9")
        assert "ignored" in post(url, stranger, sign(stranger, PD_SECRET)).json()["message"]
        assert commands.audit_log(who, action="run.acknowledged") == []

        answer = post(url, body, sign(body, PD_SECRET))
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == f"run {report.run_id} acknowledged by Dana Oncall"
        # PagerDuty delivers at least once: the same event again records nothing more
        again = post(url, body, sign(body, PD_SECRET))
        assert again.json()["message"] == "already recorded: event evt-1"
        # and a second acknowledgement of a run already taken neither
        second = webhook(report.run_id, "evt-2")
        assert (
            "already acknowledged by pagerduty:Dana Oncall"
            in (post(url, second, sign(second, PD_SECRET)).json()["message"])
        )

        acks = commands.audit_log(who, action="run.acknowledged")
        assert [(a.actor, a.details["pagerduty_event"]) for a in acks] == [
            ("pagerduty:Dana Oncall", "evt-1")
        ]
        assert acks[0].details["waiting_for"] == "run.failed"
        # taken: no escalation is due however late it is
        assert run_timers(who.store, "ops-bot", failed_at + 100_000).escalations == 0

        commands.notify_send(who, timeout=20)
        feed = [r.body["type"] for r in receivers.of("webhook")]
        assert feed == ["run.failed", "run.acknowledged"]
        told = receivers.of("webhook")[-1].body["data"]
        assert "Dana Oncall acknowledged the incident in PagerDuty" in told["text"]
        # PagerDuty heard of the failure, not of its own acknowledgement
        actions = [r.body["event_action"] for r in receivers.of("pagerduty")]
        assert actions == ["trigger"]

    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "stopped: 1 acknowledged, 4 ignored, 3 refused" in out


def test_the_receiver_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BACKOUT_PAGERDUTY_WEBHOOK_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "backout", "notify", "receive", "--listen", "127.0.0.1:9"],
        cwd=tmp_path,
        env={**env, "BACKOUT_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to receive PagerDuty webhooks unsigned" in done.stderr
    assert "BACKOUT_PAGERDUTY_WEBHOOK_SECRET" in done.stderr
    assert "Traceback" not in done.stderr
