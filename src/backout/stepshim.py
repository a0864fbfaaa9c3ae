"""The step shim: a tiny parent between the executor and a step's program.

Run as a script (``python -I -S stepshim.py GATE_FD DEADLINE_S PROGRAM ARGS...``), in a
session and process group of its own, so that it is the group's leader. Started as
``stepshim.py GATE_FD IDLE_S``, it is a *spare*, started ahead of its step (its Python
start-up then overlaps the step before): it exits after IDLE_S unless the executor claims
it first (``c``), and it reads its step with the go: ``g``, ten digits giving the length,
then NUL-separated fields: the deadline, ``1`` to send stderr to stdout, the folder to run
in, the argument count, the arguments, and the environment as ``KEY=VALUE``. It:

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


def _ready(fds: list[int], seconds: float) -> set[int]:
    """Which of ``fds`` can be read (or hit EOF) within ``seconds``. ``poll``, not
    ``select``: the gate keeps its number from the executor, above 1024 in a busy server."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return {fd for fd, _ in poller.poll(max(0, int(seconds * 1000) + 1))}


def _wait_claim(gate: int, idle: float) -> None:
    """A spare nobody claims within ``idle`` seconds goes away: it never ran anything. The
    executor claims it before it names it in the journal, so it never goes away after."""
    if not _ready([gate], idle) or os.read(gate, 1) != b"c":
        os._exit(NEVER_STARTED)


def _wait_go(gate: int) -> None:
    if os.read(gate, 1) != b"g":  # EOF: the executor died before it said go
        os._exit(NEVER_STARTED)


def _read_exactly(gate: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(gate, size - len(data))
        if not chunk:  # the executor died while it said go: nothing has started
            os._exit(NEVER_STARTED)
        data += chunk
    return data


def _read_step(gate: int) -> tuple[float, list[str]]:
    """The step sent with the go (a shim started ahead of it): set up its folder, output and
    environment here; (seconds it may take, argv)."""
    size = int(_read_exactly(gate, 10))
    fields = [os.fsdecode(field) for field in _read_exactly(gate, size).split(b"\0")]
    seconds, merge, folder, count = float(fields[0]), fields[1] == "1", fields[2], int(fields[3])
    argv, environment = fields[4 : 4 + count], fields[4 + count :]
    if merge:
        os.dup2(1, 2)
    try:
        os.chdir(folder)
    except OSError as exc:
        sys.stderr.write(f"backout: cannot start {argv[0]}: {exc}\n")
        os._exit(NOT_EXECUTABLE)
    os.environ.clear()  # posix_spawnp looks the program up on this PATH, as with Popen's env
    for item in environment:
        key, _, value = item.partition("=")
        os.environ[key] = value
    return seconds, argv


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
        ready = _ready(watched, min(left, 0.2) if child_fd < 0 else left)
        if gate in ready and os.read(gate, 1) == b"":
            _kill_group()
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return status


def _survive_term(signum: int, frame: object) -> None:
    """SIGTERM to the group is for the program; the shim keeps watching it."""


def main() -> None:
    gate = int(sys.argv[1])
    os.set_inheritable(gate, False)  # the program need not hold the executor's pipe
    signal.signal(signal.SIGTERM, _survive_term)  # a handler, unlike SIG_IGN, is not inherited
    if len(sys.argv) == 3:
        _wait_claim(gate, float(sys.argv[2]))
        _wait_go(gate)
        seconds, argv = _read_step(gate)
    else:
        _wait_go(gate)
        seconds, argv = float(sys.argv[2]), sys.argv[3:]
    deadline = time.monotonic() + seconds
    status = _watch(gate, _spawn(argv), deadline)
    _exit_like(status)


if __name__ == "__main__":
    main()
