"""Notifications are exactly once per (run, event, channel) across SIGKILL and resume: a real
`backout run` with three channels (stand-ins for Slack, PagerDuty and a signed webhook) is
killed at every step boundary, resumed, and every receiver gets each of the run's
notifications once (by delivery key: the receivers drop a repeated key, as the channels'
contract says), none missing, none refused for its shape or signature."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backout import commands
from backout.kernel.states import RunStatus
from backout.notify import channels_for, notify_event
from backout.plans import load_plan
from backout.settings import Settings
from tests.callers import caller
from tests.receivers import WEBHOOK_SECRET, StandIns, notify_section, stand_ins

pytestmark = pytest.mark.slow

STEPS = 3


def write_plan(folder: Path, url: str) -> Path:
    steps = "\n".join(
        f"  - name: step {n}\n    run: [sh, -c, 'echo {n} >> {folder}/effects']\n"
        "    idempotent: true"
        for n in range(1, STEPS + 1)
    )
    plan = folder / "plan.yaml"
    plan.write_text(
        f"""plan: notified
secrets:
  pd_key: {{env: TEST_PD_KEY}}
  hook_secret: {{env: TEST_HOOK_SECRET}}
steps:
{steps}
verify:
  - name: every step took effect
    command: [sh, -c, 'test $(sort -u {folder}/effects | wc -l) -eq {STEPS}']
"""
        + notify_section(url)
    )
    return plan


ENV = {"TEST_PD_KEY": "pd-routing-key-0123456789abcdef", "TEST_HOOK_SECRET": WEBHOOK_SECRET}


def backout(url: str, *args: str, failpoint: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV, "BACKOUT_DATABASE_URL": url, "BACKOUT_FAILPOINTS": failpoint}
    return subprocess.run(
        [sys.executable, "-m", "backout", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def expected_keys(url: str, run_id: str, plan_path: Path) -> dict[str, set[str]]:
    """From the final journal: the delivery key of every notification each channel owes."""
    notify = load_plan(plan_path).plan.notify
    assert notify is not None
    events = commands.journal(caller(Settings(database_url=url)), run_id)
    owed: dict[str, set[str]] = {"chat": set(), "pager": set(), "feed": set()}
    status = RunStatus.RUNNING
    for event in events:
        if event.kind == "run_finished":
            status = RunStatus(event.data["outcome"])
        name = notify_event(event, status, "backout")
        for channel in channels_for(notify, name, "") if name else []:
            owed[channel].add(f"backout-notify-{channel}-run-{run_id}-{event.seq}")
    return owed


FAILPOINTS = [f"{p}:{n}" for n in (1, 3) for p in ("step_started", "step_finished")]
FAILPOINTS += ["step_finished:2", "verify_started", "before_finish"]


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_each_notification_once_across_sigkill_and_resume(
    store_url: str, tmp_path: Path, failpoint: str
) -> None:
    with stand_ins() as receivers:
        plan = write_plan(tmp_path, receivers.url)
        killed = backout(store_url, "run", str(plan), failpoint=failpoint)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        runs = commands.runs(caller(Settings(database_url=store_url)))
        run_id = str(runs[0].run_id)
        resumed = backout(store_url, "resume", run_id)
        assert resumed.returncode == 0, resumed.stderr
        # what a crash left claimed mid-send goes out once its claim expires
        sent = backout(store_url, "notify", "send", "--timeout", "90s")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        owed = expected_keys(store_url, run_id, plan)
        assert_exactly_once(receivers, owed)


def assert_exactly_once(receivers: StandIns, owed: dict[str, set[str]]) -> None:
    assert receivers.refused == []
    for channel, service in (("chat", "slack"), ("pager", "pagerduty"), ("feed", "webhook")):
        keys = receivers.keys(service)
        assert set(keys) == owed[channel], f"{channel}: missing or unexpected notifications"
        assert owed[channel], f"{channel}: the run owed it nothing; the test proves nothing"
