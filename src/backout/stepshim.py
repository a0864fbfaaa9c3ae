"""The step shim: a tiny parent between the executor and a step's program.

Run as a script (``python -I -S stepshim.py GATE_FD DEADLINE_S PROGRAM ARGS...``), in a
session and process group of its own, so that it is the group's leader. It:

1. waits on the *gate* pipe until the executor says ``go`` — the executor says so only
   after it has durably journalled this process's identity (pid, start time, host, boot),
   so a process that could run is always known to whoever takes the run over; if the
   executor dies first, the pipe reads EOF and nothing ever runs;
2. starts the program, which stays in the shim's process group (as do its children,
   unless they leave it on purpose, like a daemon that calls ``setsid``);
3. waits for the program to exit, or for the gate to read EOF: the executor died (SIGKILL,
   OOM, a crash) with the step unfinished, so the shim kills the whole group — the
   program, its children and itself — rather than let the step run on unobserved; it
   also kills the group at DEADLINE_S after go, whatever the executor does (a stopped or
   hung executor cannot enforce the step's timeout), so a step never outlives it;
   SIGTERM sent to the group (a graceful stop) is for the program: the shim survives it
   and goes on watching, so that the executor's SIGKILL after the grace period still
   finds the group;
4. exits as the program did (the same code, or the same signal), so callers see the
   program's own result.

Standard library only, and nothing at import time but ``os``, ``select``, ``signal``,
``sys`` and ``time``: it starts in about 15 ms.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

NOT_FOUND = 127
NOT_EXECUTABLE = 126
NEVER_STARTED = 125  # the executor died before it said go


def _kill_group() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # includes this process: nothing comes after


def _wait_go(gate: int) -> None:
    if os.read(gate, 1) != b"g":  # EOF: the executor died before it said go
        os._exit(NEVER_STARTED)


def _spawn(argv: list[str]) -> int:
    try:
        return os.posix_spawnp(argv[0], argv, os.environ)
    except FileNotFoundError:
        sys.stderr.write(f"backout: command not found: {argv[0]}\n")
        os._exit(NOT_FOUND)
    except PermissionError:
        sys.stderr.write(f"backout: not executable: {argv[0]}\n")
        os._exit(NOT_EXECUTABLE)
    except OSError as exc:
        sys.stderr.write(f"backout: cannot start {argv[0]}: {exc}\n")
        os._exit(NOT_EXECUTABLE)


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from the shim
        except (ImportError, ValueError, OSError):
            pass
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _watch(gate: int, child: int, deadline: float) -> int:
    """Wait for the child, the executor's death (gate EOF) or the deadline; the child's
    status."""
    try:
        child_fd = os.pidfd_open(child)
    except (AttributeError, OSError):
        child_fd = -1
    watched = [gate] if child_fd < 0 else [gate, child_fd]
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill_group()
        ready, _, _ = select.select(watched, [], [], min(left, 0.2) if child_fd < 0 else left)
        if gate in ready and os.read(gate, 1) == b"":
            _kill_group()
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return status


def _survive_term(signum: int, frame: object) -> None:
    """SIGTERM to the group is for the program; the shim keeps watching it."""


def main() -> None:
    gate, seconds = int(sys.argv[1]), float(sys.argv[2])
    argv = sys.argv[3:]
    os.set_inheritable(gate, False)  # the program need not hold the executor's pipe
    signal.signal(signal.SIGTERM, _survive_term)  # a handler, unlike SIG_IGN, is not inherited
    _wait_go(gate)
    deadline = time.monotonic() + seconds
    status = _watch(gate, _spawn(argv), deadline)
    _exit_like(status)


if __name__ == "__main__":
    main()
