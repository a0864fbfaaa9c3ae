"""``run:`` — an argv list, each element templated on its own, never through a shell."""

from __future__ import annotations

import shlex

from pydantic import Field

from backout.actions.base import Action, Outcome
from backout.kernel.options import ArgvOptions, Context, resolve, resolve_program
from backout.proc import run_process


class RunOptions(ArgvOptions):
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    exit_codes: list[int] = Field(
        default_factory=lambda: [0], description="Exit codes that mean success."
    )


class RunAction(Action):
    kind = "run"
    in_process = False
    Options = RunOptions

    def execute(self, options: RunOptions, ctx: Context) -> Outcome:
        cwd = resolve(ctx.workdir, options.cwd) if options.cwd else ctx.workdir
        result = run_process(
            resolve_program(options.argv, ctx.workdir),
            cwd=cwd,
            timeout=ctx.timeout,
            env={**ctx.env, **options.env},
        )
        output = ctx.redact(result.output)
        if result.timed_out:
            return Outcome(False, f"timed out after {ctx.timeout:g}s", output)
        ok = result.exit_code in options.exit_codes
        return Outcome(ok, f"exit code {result.exit_code}", output, {"exit_code": result.exit_code})

    def describe(self, options: RunOptions) -> str:
        return "run " + shlex.join(options.argv)
