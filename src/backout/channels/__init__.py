"""Outbound channels: where queued events go after their transaction commits.

The public API for channel plugins. A plugin subclasses :class:`Channel` (and usually
:class:`Sender`), and registers it under the ``backout.channels`` entry point group::

    [project.entry-points."backout.channels"]
    teams = "acme_backout.teams:Teams"

Built in: ``servicenow`` and ``jira`` (change records, route ``itsm``).
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
from backout.channels.http import HttpSender, retry_after
from backout.channels.jira import Jira
from backout.channels.servicenow import ServiceNow
from backout.store.outbox import ITSM_ROUTE, enqueue

CHANNELS.register(ServiceNow())
CHANNELS.register(Jira())

__all__ = [
    "CHANNELS",
    "ITSM_ROUTE",
    "Channel",
    "ChannelOptions",
    "Delivery",
    "HttpSender",
    "Receipt",
    "Route",
    "SendReport",
    "Sender",
    "enqueue",
    "retry_after",
    "send",
]
