"""Running a tool's own CLI (sqitch, ansible-playbook, kubectl, helm, argocd, terraform)
and reading what it said: the part the platform actions and their baseline sources share.

Every program runs through :func:`backout.proc.run_process` (no shell, its own process
group, killed at its deadline, journalled before it starts); its standard output is kept
whole (the tools' JSON is often larger than a step's output tail), its standard error as
a tail. Nothing here redacts: callers pass what they show through ``ctx.redact``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backout.errors import ActionError
from backout.kernel.options import Context
from backout.proc import run_process, tail

CAPTURE = str(Path(__file__).with_name("capture.py"))
MIN_CALL_S = 0.5  # a call still gets this long when the step's budget is nearly spent


@dataclass(frozen=True)
class ToolResult:
    """One program's run: exit code (None when it timed out), whole stdout, stderr tail."""

    argv: tuple[str, ...]
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    timeout: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def said(self) -> str:
        """The tool's own last word: the last line of stderr, else of stdout."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1][-300:]
        return ""

    def problem(self) -> str:
        """Why it failed, in one line: ``exit code 1: Error: release: not found``."""
        if self.timed_out:
            return f"`{self.command()}` timed out after {self.timeout:g}s"
        said = self.said()
        return f"`{self.command()}` exit code {self.exit_code}" + (f": {said}" if said else "")

    def command(self) -> str:
        """The command without its program's folder, as a message shows it."""
        return shlex.join([Path(self.argv[0]).name, *self.argv[1:]])


@dataclass
class Deadline:
    """One step's time budget, shared by the several commands it runs."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return max(self.seconds - (time.monotonic() - self.start), MIN_CALL_S)

    def spent(self) -> bool:
        return time.monotonic() - self.start >= self.seconds


@dataclass
class Transcript:
    """What the commands of one step said, in order: the step's output in the journal."""

    parts: list[str] = field(default_factory=list)

    def add(self, result: ToolResult) -> ToolResult:
        lines = [f"$ {result.command()}"]
        lines += [text.rstrip() for text in (result.stdout, result.stderr) if text.strip()]
        if result.timed_out:
            lines.append(f"(timed out after {result.timeout:g}s)")
        self.parts.append("\n".join(lines))
        return result

    def add_text(self, result: ToolResult, ctx: Context) -> str:
        """The one command's transcript, redacted: the output of a one-command step."""
        self.add(result)
        return self.text(ctx)

    def note(self, text: str) -> None:
        self.parts.append(text)

    def text(self, ctx: Context) -> str:
        return tail(ctx.redact("\n".join(self.parts)))


def require_program(program: str, env: Mapping[str, str], option: str = "program") -> None:
    """Refuse a tool that is not installed, saying which option names it."""
    path = os.environ.get("PATH", os.defpath)
    path = env.get("PATH", path)
    if "/" in program:
        found = Path(program).is_file() and os.access(program, os.X_OK)
    else:
        found = shutil.which(program, path=path) is not None
    if not found:
        raise ActionError(
            f"command not found: {program}",
            hint=f"install it, or give its path in the `{option}:` option",
        )


def run_tool(
    argv: Sequence[str],
    ctx: Context,
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ToolResult:
    """Run ``argv`` to its end or ``timeout``; raise ActionError when it cannot start."""
    merged = {**ctx.env, **(env or {})}
    require_program(argv[0], merged)
    with tempfile.TemporaryDirectory(prefix="backout-tool-") as folder:
        out = Path(folder) / "stdout"
        result = run_process(
            [sys.executable, "-I", "-S", CAPTURE, str(out), *argv],
            cwd=cwd or ctx.workdir,
            timeout=timeout,
            env=merged,
            separate_stderr=True,
        )
        stdout = out.read_text(encoding="utf-8", errors="replace") if out.exists() else ""
    return ToolResult(
        tuple(argv), result.exit_code, stdout, result.stderr, result.timed_out, timeout
    )


def read_json(result: ToolResult, ctx: Context) -> Any:
    """The JSON a tool printed; ActionError naming the command when it failed or printed
    something else."""
    if not result.ok:
        raise ActionError(ctx.redact(result.problem()))
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        start = result.stdout.strip()[:80]
        raise ActionError(
            ctx.redact(f"`{result.command()}` did not print JSON ({exc.msg}): {start!r}"),
            hint="check the tool's version: see docs/platform-actions.md for the versions known",
        ) from exc


def dig(data: Any, *path: str | int) -> Any:
    """``data[a][b]…``, or None where any part is missing."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
        elif not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data
