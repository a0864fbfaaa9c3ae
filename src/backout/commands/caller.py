"""Who acts, on which store: what every verb takes first.

A :class:`Caller` is made at the edge — once per CLI process from the settings, once per
request by a server from its shared store and the request's identity — and the verbs
never read settings or the environment themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from backout.settings import DEFAULT_LEASE_TTL, Settings
from backout.store.db import Store


@dataclass(frozen=True)
class Caller:
    """The open store a verb works on, who is acting, and how long a run's lease lives
    without a heartbeat (renewed every third of it)."""

    store: Store
    actor: str
    lease_ttl: float = DEFAULT_LEASE_TTL

    @classmethod
    def of(cls, settings: Settings, *, create: bool = True) -> Caller:
        """A caller over the settings' store, opened on first use. ``create=False`` for
        verbs that only read: a missing store is then an error, never created."""
        return cls(Store(settings.database_url, create=create), settings.actor, settings.lease_ttl)
