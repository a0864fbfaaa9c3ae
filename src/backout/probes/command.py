"""Command probes: ``command`` check (exit code, output) and ``command`` baseline source."""

from __future__ import annotations

import shlex

from pydantic import Field

from backout.errors import ActionError
from backout.kernel.options import ArgvOptions, Context, resolve, resolve_program
from backout.probes.base import Check, Source, Verdict
from backout.proc import run_process


class CommandOptions(ArgvOptions):
    exit_code: int = Field(0, description="Exit code that means the check passed.")
    contains: str | None = Field(None, description="Text the output must contain.")


def _run(options: CommandOptions, ctx: Context) -> tuple[int | None, str, bool]:
    cwd = resolve(ctx.workdir, options.cwd) if options.cwd else ctx.workdir
    result = run_process(
        resolve_program(options.argv, ctx.workdir), cwd=cwd, timeout=ctx.timeout, env=ctx.env
    )
    return result.exit_code, ctx.redact(result.output), result.timed_out


def _last_line(output: str) -> str:
    """``": LAST LINE"`` of the output for a message, or nothing when there was none (a
    message never ends in a dangling colon)."""
    lines = output.strip().splitlines()
    return f": {lines[-1][-200:]}" if lines else ""


class CommandCheck(Check):
    kind = "command"
    Options = CommandOptions

    def check(self, options: CommandOptions, ctx: Context) -> Verdict:
        try:
            code, output, timed_out = _run(options, ctx)
        except ActionError as exc:
            return Verdict(False, exc.message)
        if timed_out:
            return Verdict(False, f"timed out after {ctx.timeout:g}s")
        if code != options.exit_code:
            said = _last_line(output)
            return Verdict(False, f"exit code {code}, expected {options.exit_code}{said}", code)
        if options.contains is not None and options.contains not in output:
            return Verdict(False, f"output does not contain {options.contains!r}", code)
        return Verdict(True, f"exit code {code}", code)

    def describe(self, options: CommandOptions) -> str:
        return f"`{shlex.join(options.argv)}` exits {options.exit_code}"


class CommandSource(Source):
    kind = "command"
    Options = CommandOptions

    def read(self, options: CommandOptions, ctx: Context) -> str:
        code, output, timed_out = _run(options, ctx)
        if timed_out or code != options.exit_code:
            what = f"timed out after {ctx.timeout:g}s" if timed_out else f"exit code {code}"
            raise ActionError(f"`{shlex.join(options.argv)}` failed ({what}){_last_line(output)}")
        return output.strip()

    def describe(self, options: CommandOptions) -> str:
        return f"output of `{shlex.join(options.argv)}`"
