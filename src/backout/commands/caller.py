"""Who acts, on which store: what every verb takes first.

A :class:`Caller` is made at the edge — once per CLI process from the settings, once per
request by a server from its shared store and the request's identity — and the verbs
never read settings or the environment themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from backout.plans import notify_defaults
from backout.settings import DEFAULT_HEARTBEAT, DEFAULT_LEASE_TTL, Settings
from backout.spec.models import Notify
from backout.store.db import Store


@dataclass(frozen=True)
class Caller:
    """The open store a verb works on, who is acting, and how long a run's lease lives
    without a heartbeat (renewed every ``heartbeat`` seconds, at most a third of it)."""

    store: Store
    actor: str
    lease_ttl: float = DEFAULT_LEASE_TTL
    notify: Notify | None = None  # the organisation's notify defaults (configuration file)
    heartbeat: float = DEFAULT_HEARTBEAT  # seconds between two renewals of a run's lease

    @classmethod
    def of(cls, settings: Settings, *, create: bool = True) -> Caller:
        """A caller over the settings' store, opened on first use. ``create=False`` for
        verbs that only read: a missing store is then an error, never created."""
        defaults = None
        if settings.notify_defaults is not None:
            defaults = notify_defaults(settings.notify_defaults, settings.config_file or "")
        store = Store(settings.database_url, create=create)
        return cls(store, settings.actor, settings.lease_ttl, defaults, settings.heartbeat)
