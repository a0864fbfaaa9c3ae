"""``flag:`` — set a feature flag in the backout store; its reverse is the kill switch.

``reverse`` puts back the flag's state from before the step (on/off, percentage, variants);
a flag the step created is turned off rather than deleted, so apps get a definite "off"
instead of falling back to whatever default their code carries.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.errors import BackoutError
from backout.flags.model import CHANGEABLE, FlagChange, FlagState
from backout.kernel.options import Context
from backout.settings import Settings
from backout.store.dialect import DEFAULT_URL


class FlagOptions(FlagChange):
    key: str = Field(min_length=1, description="The flag's key, e.g. new-checkout.")


def flag_store_url() -> str:
    """The store a run's flag steps write to: the run's own store (BACKOUT_DATABASE_URL, else
    the default), which is also what ``backout flags serve`` reads by default."""
    return os.environ.get("BACKOUT_DATABASE_URL") or DEFAULT_URL


def describe_state(enabled: bool | None, percentage: int | None) -> str:
    if enabled is False:
        return "off"
    share = f"{percentage}%" if percentage is not None else ""
    if enabled is None:
        return f"at {share}" if share else "variants changed"
    return f"on at {share}" if share else "on"


class FlagAction(Action):
    kind = "flag"
    Options = FlagOptions

    def execute(self, options: FlagOptions, ctx: Context) -> Outcome:
        change = FlagChange(**options.model_dump(include=set(CHANGEABLE), exclude_none=True))
        return _set(options.key, change, "plan", ctx)

    def describe(self, options: FlagOptions) -> str:
        return f"set flag {options.key} {describe_state(options.enabled, options.percentage)}"

    def reverse(self, options: FlagOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        previous = done.get("previous")  # None or missing: the flag is turned off
        try:
            state = FlagState(key=options.key, **previous) if previous else None
        except TypeError:
            return Outcome(False, f"cannot reverse: the journaled state is not a flag: {previous}")
        return _set(options.key, FlagChange.restoring(state), "reverse", ctx)


def _set(key: str, change: FlagChange, source: str, ctx: Context) -> Outcome:
    from backout.flags import repo  # the store (alembic) loads only when a flag step runs
    from backout.store.db import Store

    actor = ctx.actor or Settings().actor
    try:
        with Store(ctx.store_url or flag_store_url()) as store, store.session() as session:
            update = repo.put(session, key, change, actor, source)
    except BackoutError as exc:
        return Outcome(False, ctx.redact(exc.message))
    after = update.after
    was = (
        describe_state(update.before.enabled, update.before.percentage) if update.before else "new"
    )
    return Outcome(
        True,
        f"flag {key}: {describe_state(after.enabled, after.percentage)} "
        f"(was {was}; version {after.version})",
        detail={
            "previous": update.before.settings() if update.before else None,
            "flag": after.settings(),
            "version": after.version,
        },
    )
