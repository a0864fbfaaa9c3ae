"""Queue notifications in the journal's transaction: a notice exists iff the event that
caused it does, so a crash can lose none and a resume (which never journals an event
twice) can double none. One outbox row per (run, event, channel), keyed
``backout-notify-CHANNEL-run-RUN-SEQ``; the rows are delivered after commit, outside
the engine's path (:mod:`backout.notify.courier`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backout.kernel.events import Event
from backout.kernel.states import RunStatus
from backout.notify.events import notify_event
from backout.notify.messages import RunFacts, compose, handoff_notice
from backout.redact import Redactor
from backout.spec.models import DisasterRecovery, Notify, Secret
from backout.spec.templating import is_template, usage, walk_strings
from backout.store import outbox
from backout.store.models import OutboxRow

ROUTE_PREFIX = "notify:"
TEST_PREFIX = "notify-test:"  # `backout notify test`: tried once, apart from real ones
NotifyHook = Callable[[Session, Event, Any], None]


def route_of(channel: str) -> str:
    """The outbox route of one notify channel: ``notify:ops-chat``."""
    return ROUTE_PREFIX + channel


def channels_for(notify: Notify, name: str, environment: str) -> list[str]:
    """The channels notify event ``name`` goes to in ``environment``, in the plan's order,
    each once."""
    chosen: list[str] = []
    for route in notify.routes:
        if "*" not in route.events and name not in route.events:
            continue
        if route.environments is not None and environment not in route.environments:
            continue
        chosen += [channel for channel in route.to if channel not in chosen]
    return chosen


def sending_context(
    secrets: Mapping[str, Secret], base_dir: Path, environment: Mapping[str, str]
) -> dict[str, Any]:
    """What a sender needs to render a channel's options later, in another process maybe:
    where each secret comes from (never its value), and the environment's values."""
    sources = {
        name: {"env": s.env} if s.env else {"file": str((base_dir / str(s.file)).resolve())}
        for name, s in secrets.items()
    }
    return {"secrets": sources, "environment": dict(environment)}


def queue_notice(
    session: Session,
    notify: Notify,
    channel: str,
    notice_json: dict[str, Any],
    context: Mapping[str, Any],
    key: str,
    run_id: str | None,
    prefix: str = ROUTE_PREFIX,
    stream: str | None = None,
) -> bool:
    """Queue one notice for ``channel`` under delivery ``key``; False when that key was
    queued before (the same notice offered again: nothing is added)."""
    if session.scalars(select(OutboxRow.id).where(OutboxRow.key == key)).first() is not None:
        return False
    spec = notify.channels[channel]
    used = {
        key
        for _, text in walk_strings(spec.options)
        if is_template(text)
        for key in usage(text).keys_of("secrets")
    }
    sources = {k: v for k, v in context.get("secrets", {}).items() if k in used}
    payload = {
        "notice": notice_json,
        "channel": {"name": channel, "kind": spec.kind, "options": spec.options},
        **context,
        "secrets": sources,  # only what this channel reads: a sender needs nothing else
    }
    stream = stream or (f"run:{run_id}" if run_id else f"test:{key}")
    outbox.enqueue(
        session, prefix + channel, stream, notice_json["event"], payload, key=key, run_id=run_id
    )
    return True


def notify_hook(
    notify: Notify,
    facts: RunFacts,
    redactor: Redactor,
    context: Mapping[str, Any],
    dr: DisasterRecovery | None = None,
) -> NotifyHook:
    """The journal hook that queues the run's notifications; when the backout fails and
    the plan has ``disaster_recovery:``, the hand-off too (``dr.handoff``)."""

    def hook(session: Session, event: Event, view: Any) -> None:
        status: RunStatus = view.status
        name = notify_event(event, status, facts.mode)
        if name is None:
            return
        if name == "run.failed" and dr is not None:
            handoff = handoff_notice(dr, notify, facts, event, status.value, redactor)
            channels = channels_for(notify, "dr.handoff", facts.environment)
            for channel in [*channels, *(c for c in dr.page if c not in channels)]:
                key = f"backout-notify-{channel}-run-{facts.run_id}-{event.seq}-dr"
                told = replace(handoff, mentions=_mentions(notify, dr.owner, channel))
                queue_notice(session, notify, channel, told.to_json(), context, key, facts.run_id)
        channels = channels_for(notify, name, facts.environment)
        if not channels:
            return
        notice = compose(
            name,
            event,
            facts,
            status.value,
            redactor,
            notify.messages.get(name),
            context.get("environment"),
        ).to_json()
        for channel in channels:
            key = f"backout-notify-{channel}-run-{facts.run_id}-{event.seq}"
            queue_notice(session, notify, channel, notice, context, key, facts.run_id)

    return hook


def _mentions(notify: Notify, role: str, channel: str) -> list[str]:
    contact = notify.contacts.get(role, {}).get(channel)
    return [contact] if contact else []
