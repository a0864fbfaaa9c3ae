"""Tell people: a plan's ``notify:`` routes run events (trigger fired, backed out,
failed …) to channels (Slack, PagerDuty, Teams, email, signed webhooks), queued in the
journal's transaction and delivered after commit, exactly once per (run, event, channel).
"""

from __future__ import annotations

from backout.notify.courier import Courier, Leftover
from backout.notify.dispatch import Dispatcher, notify_route
from backout.notify.escalation import TimerReport, facts_of, run_timers, waiting
from backout.notify.events import notify_event
from backout.notify.hook import ROUTE_PREFIX, channels_for, notify_hook, route_of, sending_context
from backout.notify.messages import RunFacts, compose

__all__ = [
    "ROUTE_PREFIX",
    "Courier",
    "Dispatcher",
    "Leftover",
    "RunFacts",
    "TimerReport",
    "channels_for",
    "compose",
    "facts_of",
    "notify_event",
    "notify_hook",
    "notify_route",
    "route_of",
    "run_timers",
    "sending_context",
    "waiting",
]
