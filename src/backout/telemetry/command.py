"""``command``: run a program (argv, no shell) and read the first number it prints.

The number is the first whitespace-separated word of standard output that parses as one
(``0.042``, ``12``, ``1e-3``; ``errors: 0.042`` works, ``p99=120ms`` has no number).
Standard error is kept apart so a warning cannot be mistaken for the value. A non-zero
exit, no number or a program that cannot start is ``error``; running past the time budget
is ``timeout`` (its whole process group is killed).
"""

from __future__ import annotations

import contextlib
import shlex

from pydantic import Field

from backout.errors import ActionError
from backout.kernel.options import ArgvOptions, resolve, resolve_program
from backout.proc import run_process
from backout.telemetry.base import Reading, SignalSource, SourceContext

TAIL = 200


class CommandSignalOptions(ArgvOptions):
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


def first_number(text: str) -> float | None:
    for word in text.split():
        with contextlib.suppress(ValueError):
            return float(word)
    return None


class CommandSignal(SignalSource):
    kind = "command"
    Options = CommandSignalOptions
    default_interval = 1.0

    def read(self, options: CommandSignalOptions, ctx: SourceContext) -> Reading:
        where = f"`{shlex.join(options.argv)}`"
        cwd = resolve(ctx.workdir, options.cwd) if options.cwd else ctx.workdir
        try:
            done = run_process(
                resolve_program(options.argv, ctx.workdir),
                cwd=cwd,
                env={**ctx.env, **options.env},
                timeout=ctx.timeout,
                separate_stderr=True,
            )
        except ActionError as exc:
            return Reading.missing(ctx.clock(), "error", f"{where} cannot start: {exc.message}")
        at = ctx.clock()
        if done.exit_code is None:
            return Reading.missing(at, "timeout", f"{where} still running after {ctx.timeout:g}s")
        if done.exit_code != 0:
            tail = ctx.redact((done.stderr or done.output).strip()[-TAIL:])
            return Reading.missing(at, "error", f"{where} exited {done.exit_code}: {tail}")
        number = first_number(done.output)
        if number is None:
            output = ctx.redact(done.output.strip()[:TAIL])
            return Reading.missing(at, "error", f"{where} printed no number: {output!r}")
        return Reading.number(at, number, where)

    def describe(self, options: CommandSignalOptions) -> str:
        return f"first number printed by `{shlex.join(options.argv)}`"
