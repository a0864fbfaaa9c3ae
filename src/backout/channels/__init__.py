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

from typing import TYPE_CHECKING, Any

from backout.channels.base import (
    CHANNELS,
    Channel,
    ChannelOptions,
    Delivery,
    Receipt,
    Sender,
)
from backout.channels.email import Email
from backout.channels.http import HttpSender, retry_after
from backout.channels.jira import Jira
from backout.channels.notice import Notice, Severity
from backout.channels.pagerduty import PagerDuty
from backout.channels.servicenow import ServiceNow
from backout.channels.slack import Slack
from backout.channels.teams import Teams
from backout.channels.webhook import Webhook, verify

if TYPE_CHECKING:
    from backout.channels.delivery import Route, SendReport, send
    from backout.store.outbox import ITSM_ROUTE, enqueue

for _channel in (ServiceNow(), Jira(), Slack(), PagerDuty(), Teams(), Email(), Webhook()):
    CHANNELS.register(_channel)

# Delivery and the outbox work on the store: they load when first asked for, so that a
# plan's `notify:` channels are validated without SQLAlchemy.
_LAZY = {
    "ITSM_ROUTE": "backout.store.outbox",
    "Route": "backout.channels.delivery",
    "SendReport": "backout.channels.delivery",
    "enqueue": "backout.store.outbox",
    "send": "backout.channels.delivery",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backout.channels' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


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
