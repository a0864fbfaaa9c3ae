"""The verbs take a :class:`~backout.commands.Caller` (an open store and who acts); tests
make theirs from settings with :func:`caller`. Each store is made once per URL and test,
and disposed when the test ends (an autouse fixture in conftest.py)."""

from __future__ import annotations

from backout.commands import Caller
from backout.settings import Settings
from backout.store.db import Store

_stores: dict[str, Store] = {}


def caller(settings: Settings) -> Caller:
    """A caller over the settings' store (shared by every call in the test)."""
    store = _stores.get(settings.database_url)
    if store is None:
        store = _stores[settings.database_url] = Store(settings.database_url)
    return Caller(store, settings.actor, settings.lease_ttl)


def dispose_all() -> None:
    while _stores:
        _stores.popitem()[1].dispose()
