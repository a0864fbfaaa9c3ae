"""Notification verbs: send a test message through each channel a plan configures, and
deliver whatever notifications are queued."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from backout.channels import SendReport, send
from backout.channels.notice import Notice
from backout.commands.caller import Caller
from backout.errors import UsageError
from backout.notify import notify_route, run_timers, sending_context
from backout.notify.hook import TEST_PREFIX, queue_notice
from backout.notify.people import acknowledge, post_update
from backout.plans import load_plan, with_notify_defaults
from backout.reports import (
    Acknowledgement,
    ChannelTest,
    NotifyTestReport,
    StatusUpdate,
)
from backout.spec.environments import environment_values, select_environment
from backout.stop import STOP
from backout.store import outbox, repo

FOLLOW_S = 0.5  # `notify send --follow`: how often it looks for due timers and notices


def notify_test(
    caller: Caller,
    path: str | Path,
    channels: list[str] | None = None,
    environment: str | None = None,
    timeout: float = 15.0,
) -> NotifyTestReport:
    """Send one test message through each of the plan's notify channels (or those named),
    through the outbox like any notification (so it is audited), and say how each went."""
    loaded = with_notify_defaults(load_plan(path), caller.notify)
    plan = loaded.plan
    if plan.notify is None or not plan.notify.channels:
        raise UsageError(
            f"{loaded.shown}: the plan has no `notify.channels`",
            hint="see docs/notifications.md for a copyable `notify:` section",
        )
    names = channels or list(plan.notify.channels)
    unknown = [n for n in names if n not in plan.notify.channels]
    if unknown:
        raise UsageError(
            f"no channel named {unknown[0]!r} in the plan's notify.channels",
            hint=f"its channels: {', '.join(plan.notify.channels)}",
        )
    env = select_environment(plan, environment)
    context = sending_context(plan.secrets, loaded.base_dir, environment_values(plan, env))
    test_id = uuid.uuid4().hex[:12]
    notice = Notice(
        event="notify.test",
        title=f"{plan.service_name}: test message from backout",
        text=f"Sent by {caller.actor} with `backout notify test`. Nothing is wrong.",
        severity="info",
        run_id=f"test-{test_id}",
        service=plan.service_name,
        environment=env or "",
        plan=plan.plan,
        explain="backout notify test PLAN",
        at=time.time(),
        links=dict(plan.notify.links),
        test=True,
    ).to_json()
    with caller.store.session() as session:
        for name in names:
            key = f"backout-notify-{name}-test-{test_id}"
            queue_notice(session, plan.notify, name, notice, context, key, None, TEST_PREFIX)
    # its own route: one try each, and no other queued notification is touched
    route = notify_route(max_attempts=1, prefix=TEST_PREFIX)
    send(caller.store, route, caller.actor, timeout, once=False)
    results = []
    with caller.store.session() as session:
        for name in names:
            row = outbox.by_key(session, f"backout-notify-{name}-test-{test_id}")
            kind = plan.notify.channels[name].kind
            results.append(ChannelTest(name, kind, row.status == "sent", row.last_error, row.id))
    return NotifyTestReport(plan.plan, results)


def notify_send(
    caller: Caller,
    timeout: float = 60.0,
    once: bool = False,
    retry_delay: float = 1.0,
    max_attempts: int = 10,
    follow: bool = False,
) -> SendReport:
    """Queue the escalations and update reminders that are due, then deliver every queued
    notification (all ``notify:`` routes) until none is due or ``timeout`` seconds have
    passed. ``follow``: keep doing both until stopped (SIGTERM, Ctrl-C): a sidecar that
    escalates for runs no command is watching any more."""
    route = notify_route(retry_delay=retry_delay, max_attempts=max_attempts)
    run_timers(caller.store, caller.actor)
    if not follow:
        return send(caller.store, route, caller.actor, timeout, once)
    total = SendReport()
    while not STOP.wait(FOLLOW_S):
        run_timers(caller.store, caller.actor)
        report = send(caller.store, route, caller.actor, 0.0, once=True)
        total.sent += report.sent
        total.failed_attempts += report.failed_attempts
        total.dead_lettered += report.dead_lettered
        total.errors = (total.errors + report.errors)[-20:]
        total.pending, total.dead = report.pending, report.dead
    return total


def ack(caller: Caller, run_id: str, message: str = "") -> Acknowledgement:
    """Take the run: escalation stops, the routes of ``run.acknowledged`` are told (a
    PagerDuty channel acknowledges the incident), audited as ``run.acknowledged``."""
    with caller.store.session() as session:
        row = repo.get_run(session, run_id)
        said = acknowledge(session, row, caller.actor, message)
    return Acknowledgement(row.id, caller.actor, said.at, said.waiting_for, said.channels, said.seq)


def notify_update(caller: Caller, run_id: str, message: str) -> StatusUpdate:
    """Post a status update about the run to the routes of ``run.updated``; audited as
    ``run.updated``, the first one with how long after the incident began it came."""
    if not message.strip():
        raise UsageError("an update needs a message", hint="--message 'rolled back; watching'")
    with caller.store.session() as session:
        row = repo.get_run(session, run_id)
        said = post_update(session, row, caller.actor, message)
    return StatusUpdate(
        row.id, caller.actor, said.at, message, said.channels, said.seq, said.first_update_s
    )
