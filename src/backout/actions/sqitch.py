"""``sqitch:`` — deploy, revert or verify a Sqitch project against a target, to a change or
tag; or ``roundtrip``: deploy, verify and revert again in one step (sqitch #569).

Before and after every command the step reads the change the target has deployed
(``sqitch status``) and journals both: after a failure — a failed verify or a deploy
script that stopped halfway (sqitch #330) — the step says exactly which change is
deployed now, rather than leaving it to be found out. Its reverse goes back to the change
recorded before the step (``revert --to`` it after a deploy, ``deploy --to`` it after a
revert), by change id, so a reworked change name cannot be mistaken for another.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from backout.actions.base import Action, Outcome
from backout.errors import ActionError
from backout.kernel.options import Context
from backout.probes.sqitch import Deployed, SqitchTarget, as_json, deployed, split_password, sqitch
from backout.probes.toolcli import Deadline, ToolResult, Transcript

FAILED_CHANGE = re.compile(r"^\s*[+\-*]\s+(\S+).*\.\.\s+not ok\s*$", re.MULTILINE)
FAILED_WORDS = re.compile(r"^(Deploy|Revert|Verify) failed\.?$")
Verb = Literal["deploy", "revert", "verify", "roundtrip"]


class SqitchOptions(SqitchTarget):
    action: Verb = Field("deploy", description="deploy, revert, verify, or roundtrip.")
    to: str | None = Field(
        None,
        description="The change or tag to stop at (`@v1.2`, `add_users`, a change id); "
        "deploy and verify default to the plan's last change.",
    )
    verify: bool = Field(True, description="Deploy: run each change's verify script.")
    mode: Literal["all", "tag", "change"] = Field(
        "all", description="Deploy: what Sqitch reverts when a change fails (its --mode)."
    )
    set: dict[str, str] = Field(
        default_factory=dict, description="Variables for the scripts (--set NAME=VALUE)."
    )

    @model_validator(mode="after")
    def _revert_names_where(self) -> SqitchOptions:
        if self.action == "revert" and not self.to:
            raise ValueError(
                "revert needs `to:` (the change or tag to keep), e.g. `to: "
                '"{{ baseline.schema }}"`; reverting everything is `run: [sqitch, revert, -y]`'
            )
        return self


class SqitchAction(Action):
    kind = "sqitch"
    in_process = False
    Options = SqitchOptions

    def execute(self, options: SqitchOptions, ctx: Context) -> Outcome:
        deadline, log = Deadline(ctx.timeout), Transcript()
        try:
            before = deployed(options, ctx, deadline.remaining())
            if options.action == "roundtrip":
                return _roundtrip(options, ctx, before, deadline, log)
            result = log.add(_command(options, ctx, options.action, options.to, deadline))
            after = deployed(options, ctx, deadline.remaining())
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message), log.text(ctx))
        return _outcome(options.action, result, before, after, ctx, log)

    def reverse(self, options: SqitchOptions, done: dict[str, Any], ctx: Context) -> Outcome:
        if options.action in ("verify", "roundtrip"):
            return Outcome(True, f"nothing to undo: a {options.action} leaves the target as it was")
        if "before" not in done:
            return Outcome(False, "cannot reverse: the step recorded no change deployed before it")
        before = done["before"]
        deadline, log = Deadline(ctx.timeout), Transcript()
        try:
            current = deployed(options, ctx, deadline.remaining())
            verb = "revert" if options.action == "deploy" else "deploy"
            to = before["id"] if before else None
            result = log.add(_command(options, ctx, verb, to, deadline, everything=True))
            after = deployed(options, ctx, deadline.remaining())
        except ActionError as exc:
            return Outcome(False, ctx.redact(exc.message), log.text(ctx))
        return _outcome(verb, result, current, after, ctx, log)

    def describe(self, options: SqitchOptions) -> str:
        where = f" to {options.to}" if options.to else ""
        return f"sqitch {options.action}{where} on {split_password(options.target)[0]}"


def _command(
    options: SqitchOptions,
    ctx: Context,
    verb: str,
    to: str | None,
    deadline: Deadline,
    everything: bool = False,
) -> ToolResult:
    """One sqitch command. ``revert`` without ``to`` reverts every change, which only a
    reverse does (``everything``: nothing was deployed before the step)."""
    args: list[str] = []
    if verb == "deploy":
        args += ["--verify" if options.verify else "--no-verify", "--mode", options.mode]
    if verb == "revert":
        args.append("-y")
        if to is None and not everything:
            raise ActionError("sqitch revert without a change to stop at")
    if to:
        args += ["--to", to]
    for name, value in options.set.items():
        args += ["--set", f"{name}={value}"]
    return sqitch(options, ctx, verb, *args, timeout=deadline.remaining())


def _roundtrip(
    options: SqitchOptions,
    ctx: Context,
    before: Deployed | None,
    deadline: Deadline,
    log: Transcript,
) -> Outcome:
    """deploy --verify, then revert to where the target was: proves both directions."""
    forward = options.model_copy(update={"verify": True})
    result = log.add(_command(forward, ctx, "deploy", options.to, deadline))
    reached = deployed(options, ctx, deadline.remaining())
    if not result.ok:
        return _outcome("deploy", result, before, reached, ctx, log)
    to = before.change_id if before else None
    back = log.add(_command(options, ctx, "revert", to, deadline, everything=True))
    after = deployed(options, ctx, deadline.remaining())
    if not back.ok:
        return _outcome("revert", back, reached, after, ctx, log)
    if after != before:
        return Outcome(
            False,
            f"roundtrip did not come back: deployed now {_name(after)}, was {_name(before)}",
            log.text(ctx),
            _detail("roundtrip", before, after, reached=as_json(reached)),
        )
    summary = (
        f"roundtrip: deployed and verified through {_name(reached)}, reverted to {_name(after)}"
    )
    return Outcome(
        True,
        summary,
        log.text(ctx),
        _detail("roundtrip", before, after, reached=as_json(reached)),
    )


def _outcome(
    verb: str,
    result: ToolResult,
    before: Deployed | None,
    after: Deployed | None,
    ctx: Context,
    log: Transcript,
) -> Outcome:
    detail = _detail(verb, before, after)
    if result.ok:
        return Outcome(True, _success(verb, before, after), log.text(ctx), detail)
    failed = FAILED_CHANGE.search(result.stdout)
    at = f" at change {failed.group(1)}" if failed else ""
    summary = f"sqitch {verb} failed{at} ({_reason(result)}); deployed now: {_name(after)}"
    if failed:
        detail["failed_change"] = failed.group(1)
    return Outcome(False, ctx.redact(summary), log.text(ctx), detail)


def _success(verb: str, before: Deployed | None, after: Deployed | None) -> str:
    if verb == "verify":
        return f"verified through {_name(after)}"
    if before == after:
        return f"nothing to {verb}: {_name(after)} is deployed"
    done = "deployed through" if verb == "deploy" else "reverted to"
    return f"{done} {_name(after)} (was {_name(before)})"


def _reason(result: ToolResult) -> str:
    """Sqitch's own complaint: the database's ERROR line, else its last words that are
    more than "Deploy failed"."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            return line
    meaningful = [line for line in lines if not FAILED_WORDS.match(line)]
    if meaningful:
        return meaningful[-1]
    return result.problem()


def _name(found: Deployed | None) -> str:
    return found.name if found else "no change"


def _detail(
    verb: str, before: Deployed | None, after: Deployed | None, **extra: Any
) -> dict[str, Any]:
    return {"action": verb, "before": as_json(before), "after": as_json(after), **extra}
