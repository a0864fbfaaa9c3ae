"""Run a process without a shell, with a hard timeout that kills its whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backout.errors import ActionError

TAIL_BYTES = 4096
KILL_GRACE_S = 2.0  # after the kill, how long to drain output a runaway child may hold open


@dataclass(frozen=True)
class ProcResult:
    exit_code: int | None  # None when it timed out
    output: str  # merged stdout/stderr, tail only
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def tail(text: str, limit: int = TAIL_BYTES) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> ProcResult:
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            start_new_session=True,  # so a timeout can kill the children too
        )
    except FileNotFoundError as exc:
        raise ActionError(
            f"command not found: {argv[0]}",
            hint="use a path relative to the plan file, or a program on PATH",
        ) from exc
    except PermissionError as exc:
        raise ActionError(f"not executable: {argv[0]}", hint=f"chmod +x {argv[0]}") from exc
    except OSError as exc:
        raise ActionError(f"cannot start {argv[0]}: {exc}") from exc
    try:
        out, _ = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return ProcResult(None, tail(_drain(proc).decode(errors="replace")), True)
    return ProcResult(proc.returncode, tail(out.decode(errors="replace")), False)


def _drain(proc: subprocess.Popen[bytes]) -> bytes:
    """Output after the kill; a child that left the group (setsid) may hold the pipe open."""
    try:
        out, _ = proc.communicate(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.output or b""
        if proc.stdout:
            proc.stdout.close()
        proc.wait()
    return out


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
