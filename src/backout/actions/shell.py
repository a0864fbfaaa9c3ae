"""``shell:`` — an explicit shell script. It is never templated: values reach it only as
environment variables (``$BACKOUT_BASELINE_RELEASE``), so no value can inject commands."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from backout.actions.base import Action, Outcome
from backout.kernel.options import Context, Options, resolve
from backout.proc import run_process


class ShellOptions(Options):
    script: str = Field(min_length=1, description="Script text, run with `shell -c`.")
    shell: str = Field("/bin/sh", description="Shell program.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(None, description="Working folder (relative to the plan file).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"script": value} if isinstance(value, str) else value


class ShellAction(Action):
    kind = "shell"
    in_process = False
    Options = ShellOptions
    templated = False

    def execute(self, options: ShellOptions, ctx: Context) -> Outcome:
        cwd = resolve(ctx.workdir, options.cwd) if options.cwd else ctx.workdir
        result = run_process(
            [options.shell, "-c", options.script],
            cwd=cwd,
            timeout=ctx.timeout,
            env={**ctx.env, **options.env},
        )
        output = ctx.redact(result.output)
        if result.timed_out:
            return Outcome(False, f"timed out after {ctx.timeout:g}s", output)
        return Outcome(
            result.ok, f"exit code {result.exit_code}", output, {"exit_code": result.exit_code}
        )

    def describe(self, options: ShellOptions) -> str:
        first = options.script.strip().splitlines()[0] if options.script.strip() else ""
        return f"shell: {first}" + (" …" if "\n" in options.script.strip() else "")
