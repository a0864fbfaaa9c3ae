"""Run a process without a shell, with a hard timeout that kills its whole process group.

Output goes to an unlinked temporary file, not a pipe: the step ends when its process
exits, even if it started a daemon that keeps the output open (a restart script), and a
timeout never waits on anything but the process itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backout.errors import ActionError

TAIL_BYTES = 4096
_LIVE: set[int] = set()  # process groups of steps running now, for kill_all() on Ctrl-C


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


def _start(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None, output: IO[bytes]
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
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


def _read_tail(output: IO[bytes]) -> str:
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - TAIL_BYTES * 4))  # up to 4 bytes per character
    return tail(output.read().decode(errors="replace"))


def run_process(
    argv: Sequence[str], *, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> ProcResult:
    with tempfile.TemporaryFile() as output:
        proc = _start(argv, cwd, env, output)
        _LIVE.add(proc.pid)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            timed_out = True
        finally:
            _LIVE.discard(proc.pid)
        return ProcResult(None if timed_out else proc.returncode, _read_tail(output), timed_out)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_all() -> None:
    """Kill the process groups of every step still running (the user pressed Ctrl-C)."""
    for pgid in list(_LIVE):
        _kill_group(pgid)
