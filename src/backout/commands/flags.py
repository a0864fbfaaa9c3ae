"""Flag verbs: list, get, set and evaluate the flags held in the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backout.commands.caller import Caller
from backout.errors import NotFound
from backout.flags import repo
from backout.flags.evaluate import Evaluation, evaluate
from backout.flags.model import FlagChange, FlagState, check_key
from backout.flags.repo import FlagUpdate


def list_flags(caller: Caller) -> list[FlagState]:
    with caller.store.session() as session:
        return repo.all_flags(session)


def get_flag(caller: Caller, key: str) -> FlagState:
    with caller.store.session() as session:
        flag = repo.get(session, check_key(key))
    if flag is None:
        raise NotFound(
            f"no flag {key!r} in this store",
            hint=f"create it with `backout flags set {key} --off`; list flags with "
            "`backout flags list`",
        )
    return flag


def set_flag(caller: Caller, key: str, change: FlagChange, source: str = "cli") -> FlagUpdate:
    """Apply ``change`` (creating the flag if needed), audited as ``flag.set``."""
    with caller.store.session() as session:
        return repo.put(session, key, change, caller.actor, source)


def evaluate_flag(caller: Caller, key: str, context: Mapping[str, Any]) -> Evaluation:
    """What an OpenFeature client would get for ``key`` in ``context``."""
    with caller.store.session() as session:
        return evaluate(key, repo.get(session, key), context)
