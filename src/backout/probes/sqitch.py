"""Sqitch, read: which change a target has deployed (``sqitch status``), as a baseline
source and for the ``sqitch`` action's before/after records.

The target is a Sqitch URI (``db:pg://user:password@host:5432/db``). A password in it never
reaches a command line (where ``ps`` would show it): it is taken out of the URI and given
to Sqitch as ``SQITCH_PASSWORD``, Sqitch's documented variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field

from backout.errors import ActionError
from backout.kernel.options import Context, Options, resolve
from backout.probes.base import Source
from backout.probes.toolcli import ToolResult, run_tool

CHANGE = re.compile(r"^# Change:\s+([0-9a-f]{40})\s*$", re.MULTILINE)
NAME = re.compile(r"^# Name:\s+(\S+)\s*$", re.MULTILINE)
NOTHING_DEPLOYED = "No changes deployed"
# Sqitch speaks the user's language; the action parses its English
LOCALE = {"LC_ALL": "C.UTF-8", "LANGUAGE": "en"}


class SqitchTarget(Options):
    target: str = Field(
        description="Sqitch target URI, e.g. `db:pg://app@127.0.0.1:5432/shop` (a password "
        "in it, e.g. from `{{ secrets.db_uri }}`, is passed as SQITCH_PASSWORD)."
    )
    dir: str = Field(".", description="The Sqitch project folder (relative to the plan file).")
    plan_file: str | None = Field(
        None, description="The plan file, when not the project's `sqitch.plan`."
    )
    sqitch: str = Field("sqitch", description="The sqitch program (a path, or a name on PATH).")


@dataclass(frozen=True)
class Deployed:
    """The last change deployed to a target."""

    change_id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"change": self.name, "id": self.change_id}


def split_password(target: str) -> tuple[str, str | None]:
    """(the URI without its password, the password): ``db:pg://u:p@h/db`` -> ``db:pg://u@h/db``."""
    if not target.startswith("db:"):
        return target, None
    parts = urlsplit(target[3:])
    if parts.password is None:
        return target, None
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{parts.username}@{host}" if parts.username else host
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return f"db:{bare}", unquote(parts.password)


def sqitch(
    options: SqitchTarget, ctx: Context, command: str, *args: str, timeout: float
) -> ToolResult:
    """Run ``sqitch COMMAND --target URI ARGS`` in the project folder."""
    target, password = split_password(options.target)
    argv = [options.sqitch, command, "--target", target]
    if options.plan_file:
        argv += ["--plan-file", str(resolve(ctx.workdir, options.plan_file))]
    env = dict(LOCALE)
    if password is not None:
        env["SQITCH_PASSWORD"] = password
    return run_tool([*argv, *args], ctx, timeout=timeout, cwd=project(options, ctx), env=env)


def project(options: SqitchTarget, ctx: Context) -> Path:
    folder = resolve(ctx.workdir, options.dir)
    if not folder.is_dir():
        raise ActionError(
            f"the Sqitch project folder {options.dir} does not exist ({folder})",
            hint="set `dir:` to the folder holding sqitch.plan, relative to the plan file",
        )
    return folder


def deployed(options: SqitchTarget, ctx: Context, timeout: float) -> Deployed | None:
    """The target's last deployed change; None when it has none. ActionError when Sqitch
    cannot say (no database, no project)."""
    result = sqitch(options, ctx, "status", timeout=timeout)
    if NOTHING_DEPLOYED in result.stdout and not CHANGE.search(result.stdout):
        return None
    change, name = CHANGE.search(result.stdout), NAME.search(result.stdout)
    if not result.ok or change is None or name is None:
        raise ActionError(ctx.redact(f"cannot read the deployed change: {result.problem()}"))
    return Deployed(change.group(1), name.group(1))


class SqitchSource(Source):
    """``sqitch:`` baseline source: the name of the target's last deployed change."""

    kind = "sqitch"
    Options = SqitchTarget

    def read(self, options: SqitchTarget, ctx: Context) -> str:
        found = deployed(options, ctx, ctx.timeout)
        if found is None:
            raise ActionError(f"no Sqitch change is deployed to {ctx.redact(options.target)}")
        return found.name

    def describe(self, options: SqitchTarget) -> str:
        return f"the Sqitch change deployed to {split_password(options.target)[0]}"


def as_json(found: Deployed | None) -> dict[str, Any] | None:
    return found.to_json() if found else None
