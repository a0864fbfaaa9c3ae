"""The status page: components (one per service, or as the plans' ``status_page:``
sections declare) with Statuspage's states, and incidents with its phases, moved by run
events (:mod:`.hook`), by hand and by a quiet period (:mod:`.moves`); built as a static
page, ``status.json`` and an Atom feed (:mod:`.build`) after the visibility guard
(:mod:`.visibility`) has dropped everything internal. See docs/status-page.md."""

from __future__ import annotations

from backout.statuspage.build import FILES, Written, write_site
from backout.statuspage.hook import statuspage_hook
from backout.statuspage.moves import Move, apply, resolve_quiet, track
from backout.statuspage.page import PageState, load_state
from backout.statuspage.states import (
    COMPONENT_STATUSES,
    INCIDENT_STATUSES,
    Section,
    check_component_status,
    check_status,
)
from backout.statuspage.visibility import PublicPage, Withheld, publish

__all__ = [
    "COMPONENT_STATUSES",
    "FILES",
    "INCIDENT_STATUSES",
    "Move",
    "PageState",
    "PublicPage",
    "Section",
    "Withheld",
    "Written",
    "apply",
    "check_component_status",
    "check_status",
    "load_state",
    "publish",
    "resolve_quiet",
    "statuspage_hook",
    "track",
    "write_site",
]
