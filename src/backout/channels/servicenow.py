"""``servicenow``: change records in the ServiceNow Table API. The first event of a change
creates a ``change_request``; later ones add ``work_notes`` (and move ``state``)."""

from __future__ import annotations

from backout.channels.base import ChannelOptions
from backout.channels.itsm import ItsmChannel, ItsmSender


class ServiceNow(ItsmChannel):
    kind = "servicenow"
    Options = ChannelOptions

    def open(self, options: ChannelOptions) -> ItsmSender:
        return ItsmSender(options, "servicenow")
