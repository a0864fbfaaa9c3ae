"""Flag verbs as plain functions taking settings (the CLI, the action and the server use them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from backout.errors import NotFound
from backout.flags import repo
from backout.flags.evaluate import Evaluation, evaluate
from backout.flags.model import FlagChange, FlagState, check_key
from backout.flags.repo import FlagUpdate
from backout.settings import Settings
from backout.store.db import open_store


@contextmanager
def _session(settings: Settings, create: bool = False) -> Iterator[Session]:
    """Reading never creates a store (``no store at …``); only ``set`` does."""
    store = open_store(settings.database_url, create=create)
    try:
        with store.session() as session:
            yield session
    finally:
        store.dispose()


def list_flags(settings: Settings) -> list[FlagState]:
    with _session(settings) as session:
        return repo.all_flags(session)


def get_flag(settings: Settings, key: str) -> FlagState:
    with _session(settings) as session:
        flag = repo.get(session, check_key(key))
    if flag is None:
        raise NotFound(
            f"no flag {key!r} in this store",
            hint=f"create it with `backout flags set {key} --off`; list flags with "
            "`backout flags list`",
        )
    return flag


def set_flag(settings: Settings, key: str, change: FlagChange, source: str = "cli") -> FlagUpdate:
    with _session(settings, create=True) as session:
        return repo.put(session, key, change, settings.actor, source)


def evaluate_flag(settings: Settings, key: str, context: Mapping[str, Any]) -> Evaluation:
    with _session(settings) as session:
        return evaluate(key, repo.get(session, key), context)
