"""``command``: run a program (argv, no shell) and read the first number it prints.

The number is the first whitespace-separated word of standard output that parses as one
(``0.042``, ``12``, ``1e-3``; ``errors: 0.042`` works, ``p99=120ms`` has no number).
Standard error is kept apart so a warning cannot be mistaken for the value. A non-zero
exit, no number or a program that cannot start is ``error``; running past the time budget
is ``timeout`` (its whole process group is killed).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from backout.actions.base import ArgvOptions, resolve
from backout.telemetry.base import Reading, Source, SourceContext

TAIL = 200
KILL_GRACE_S = 2.0


class CommandOptions(ArgvOptions):
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


@dataclass(frozen=True)
class Finished:
    exit_code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str


def run(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> Finished:
    """Like ``backout.proc.run_process`` but with stdout apart from stderr; raises OSError
    when the program cannot start."""
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so a timeout can kill the children too
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return Finished(None, *_drain(proc))
    return Finished(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def _drain(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Output after the kill; a child that left the group (setsid) may hold the pipes."""
    try:
        out, err = proc.communicate(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
        proc.wait()
        return "", ""
    return out.decode(errors="replace"), err.decode(errors="replace")


def _program(argv: list[str], workdir: Path) -> list[str]:
    """``./bin/x`` and ``bin/x`` are relative to the plan file; bare names use PATH."""
    if "/" in argv[0] and not argv[0].startswith("/"):
        return [str(resolve(workdir, argv[0])), *argv[1:]]
    return argv


def first_number(text: str) -> float | None:
    for word in text.split():
        with contextlib.suppress(ValueError):
            return float(word)
    return None


class CommandSource(Source):
    kind = "command"
    Options = CommandOptions
    default_interval = 1.0

    def read(self, options: CommandOptions, ctx: SourceContext) -> Reading:
        where = f"`{shlex.join(options.argv)}`"
        cwd = resolve(ctx.workdir, options.cwd) if options.cwd else ctx.workdir
        try:
            done = run(
                _program(options.argv, ctx.workdir),
                cwd=cwd,
                env={**ctx.env, **options.env},
                timeout=ctx.timeout,
            )
        except OSError as exc:
            return Reading.missing(ctx.clock(), "error", f"{where} cannot start: {exc.strerror}")
        at = ctx.clock()
        if done.exit_code is None:
            return Reading.missing(at, "timeout", f"{where} still running after {ctx.timeout:g}s")
        if done.exit_code != 0:
            tail = ctx.redact((done.stderr or done.stdout).strip()[-TAIL:])
            return Reading.missing(at, "error", f"{where} exited {done.exit_code}: {tail}")
        number = first_number(done.stdout)
        if number is None:
            output = ctx.redact(done.stdout.strip()[:TAIL])
            return Reading.missing(at, "error", f"{where} printed no number: {output!r}")
        return Reading.number(at, number, where)

    def describe(self, options: CommandOptions) -> str:
        return f"first number printed by `{shlex.join(options.argv)}`"
