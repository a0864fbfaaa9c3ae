"""Outbound channels: where queued events go after their transaction commits.

The public API for channel plugins. A plugin subclasses :class:`Channel` (and usually
:class:`Sender`), and registers it under the ``backout.channels`` entry point group::

    [project.entry-points."backout.channels"]
    teams = "acme_backout.teams:Teams"

Built in: ``servicenow`` and ``jira`` (change records, route ``itsm``); and for
notifications (a :class:`Notice` per delivery): ``slack``, ``pagerduty``, ``teams``,
``email`` and ``webhook`` (signed the Standard Webhooks way; :func:`verify` checks it).
"""

from __future__ import annotations

from backout.channels.base import (
    CHANNELS,
    Channel,
    ChannelOptions,
    Delivery,
    Receipt,
    Sender,
)
from backout.channels.delivery import Route, SendReport, send
from backout.channels.email import Email
from backout.channels.http import HttpSender, retry_after
from backout.channels.jira import Jira
from backout.channels.notice import Notice, Severity
from backout.channels.pagerduty import PagerDuty
from backout.channels.servicenow import ServiceNow
from backout.channels.slack import Slack
from backout.channels.teams import Teams
from backout.channels.webhook import Webhook, verify
from backout.store.outbox import ITSM_ROUTE, enqueue

for _channel in (ServiceNow(), Jira(), Slack(), PagerDuty(), Teams(), Email(), Webhook()):
    CHANNELS.register(_channel)

__all__ = [
    "CHANNELS",
    "ITSM_ROUTE",
    "Channel",
    "ChannelOptions",
    "Delivery",
    "HttpSender",
    "Notice",
    "Receipt",
    "Route",
    "SendReport",
    "Sender",
    "Severity",
    "enqueue",
    "retry_after",
    "send",
    "verify",
]
