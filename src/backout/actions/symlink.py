"""``symlink:`` — point a link at a target atomically (new link + rename over the old one)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.kernel.options import Context, Options, resolve


class SymlinkOptions(Options):
    link: str = Field(description="The symlink to switch (relative to the plan file).")
    target: str = Field(min_length=1, description="Where it should point (written as given).")
    must_exist: bool = Field(True, description="Refuse to point at a target that does not exist.")


class SymlinkAction(Action):
    kind = "symlink"
    Options = SymlinkOptions

    def execute(self, options: SymlinkOptions, ctx: Context) -> Outcome:
        link = resolve(ctx.workdir, options.link)
        target_path = resolve(link.parent, options.target)
        if options.must_exist and not target_path.exists():
            return Outcome(False, f"target {options.target} does not exist")
        previous = os.readlink(link) if link.is_symlink() else None
        if link.exists() and not link.is_symlink():
            return Outcome(False, f"{options.link} exists and is not a symlink")
        _switch(link, options.target)
        return Outcome(
            True,
            f"{options.link} -> {options.target} (was {previous})",
            detail={"previous": previous, "target": options.target},
        )

    def describe(self, options: SymlinkOptions) -> str:
        return f"point {options.link} at {options.target}"

    def reverse(self, options: SymlinkOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        link = resolve(ctx.workdir, options.link)
        previous = done.get("previous")
        if previous is None:
            link.unlink(missing_ok=True)
            return Outcome(True, f"removed {options.link} (it did not exist before)")
        _switch(link, str(previous))
        return Outcome(
            True,
            f"{options.link} -> {previous} (restored)",
            detail={"previous": options.target, "target": previous},
        )


def _switch(link: Path, target: str) -> None:
    temp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(target, temp)
    os.replace(temp, link)  # rename(2) is atomic: readers see old or new, never neither
