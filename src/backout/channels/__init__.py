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
from backout.channels.http import HttpSender, retry_after
from backout.channels.notice import Notice, Severity

if TYPE_CHECKING:
    from backout.channels.delivery import Route, SendReport, send
    from backout.channels.webhook import verify
    from backout.store.outbox import ITSM_ROUTE, enqueue

CHANNELS.add_builtins(
    {
        "servicenow": "backout.channels.servicenow:ServiceNow",
        "jira": "backout.channels.jira:Jira",
        "slack": "backout.channels.slack:Slack",
        "pagerduty": "backout.channels.pagerduty:PagerDuty",
        "teams": "backout.channels.teams:Teams",
        "email": "backout.channels.email:Email",
        "webhook": "backout.channels.webhook:Webhook",
    }
)  # each module loads when a plan first uses its kind

# Delivery and the outbox work on the store: they load when first asked for, so that a
# plan's `notify:` channels are validated without SQLAlchemy.
_LAZY = {
    "verify": "backout.channels.webhook",
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
