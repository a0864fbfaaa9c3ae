"""``jira``: change records as Jira issues of type Change; later events are comments."""

from __future__ import annotations

from pydantic import Field

from backout.channels.base import ChannelOptions
from backout.channels.itsm import ItsmChannel, ItsmSender


class JiraOptions(ChannelOptions):
    project: str = Field("CHG", description="The Jira project key issues are created in")


class Jira(ItsmChannel):
    kind = "jira"
    Options = JiraOptions

    def open(self, options: JiraOptions) -> ItsmSender:
        return ItsmSender(options, "jira", options.project)
