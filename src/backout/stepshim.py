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

Started as ``stepshim.py zygote SOCKET_FD``, it is a *zygote* (a fork server): one per
executor, started once, it starts no program itself. For each request on its Unix socket
(``f``, or ``s`` and IDLE_S for a spare, with four descriptors passed along: the gate's read
end, the files for stdout and stderr, and a *channel* socket for this shim alone) it forks
a shim, which makes itself the leader of a new session and group, takes the descriptors as
its gate, stdout and stderr, closes every other, and goes on as a spare does (from its
claim for a spare, from its go otherwise).
A fork of this small process takes a millisecond where a new Python takes 15 to 30. The
zygote writes the shim's pid on the channel once the shim leads its session, and its exit
code (as ``Popen.returncode`` gives it: negative for a signal) once it ended; it reaps the
shim only after the executor closed the channel, so the pid the executor may still signal
is never reused under it. It exits once its socket reads EOF (the executor is done with
it, or died) and no channel is open — when the executor dies, all close at once. It kills
nothing: each shim watches its own gate.

Standard library only, and nothing at import time but ``os``, ``select``, ``signal``,
``sys`` and ``time`` (the zygote also ``socket``): it starts in about 15 ms.
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


Environment = dict[bytes, bytes]


def _read_step(gate: int) -> tuple[float, list[bytes], Environment]:
    """The step sent with the go (a shim started ahead of it): set up its folder and output
    here; (seconds it may take, argv, environment)."""
    size = int(_read_exactly(gate, 10))
    fields = _read_exactly(gate, size).split(b"\0")
    seconds, merge, folder, count = float(fields[0]), fields[1] == b"1", fields[2], int(fields[3])
    argv = fields[4 : 4 + count]
    environment = dict(item.partition(b"=")[::2] for item in fields[4 + count :])
    if merge:
        os.dup2(1, 2)
    try:
        os.chdir(folder)
    except OSError as exc:
        sys.stderr.write(f"backout: cannot start {os.fsdecode(argv[0])}: {exc}\n")
        os._exit(NOT_EXECUTABLE)
    # posix_spawnp looks the program up on this process's PATH: the step's, as with Popen's
    # env (only PATH: rewriting the whole environment costs a few hundred microseconds)
    if b"PATH" in environment:
        os.environb[b"PATH"] = environment[b"PATH"]
    else:
        os.environb.pop(b"PATH", None)
    return seconds, argv, environment


def _spawn(argv: list[bytes] | list[str], environment: Environment | None = None) -> int:
    program = os.fsdecode(argv[0])
    try:
        return os.posix_spawnp(argv[0], argv, os.environb if environment is None else environment)
    except FileNotFoundError:
        sys.stderr.write(f"backout: command not found: {program}\n")
        os._exit(NOT_FOUND)
    except PermissionError:
        sys.stderr.write(f"backout: not executable: {program}\n")
        os._exit(NOT_EXECUTABLE)
    except OSError as exc:
        sys.stderr.write(f"backout: cannot start {program}: {exc}\n")
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


MESSAGE_BYTES = 12  # a pid, then an exit code, on a forked shim's channel: b"%011d\n"


def _forked(gate: int, out: int, err: int, devnull: int, ready: int, idle: float) -> None:
    """In the zygote's child: become a shim for one step (never returns); a spare when
    ``idle`` is not negative."""
    try:
        os.setsid()  # a new session and group, led by this process
        os.close(ready)  # the zygote may now name this pid: killpg(pid) reaches the group
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        if gate != 3:
            os.dup2(gate, 3)
        os.closerange(4, max(os.sysconf("SC_OPEN_MAX"), 4))  # the zygote's, other steps'
        os.set_inheritable(3, False)
        signal.signal(signal.SIGTERM, _survive_term)
        if idle >= 0:
            _wait_claim(3, idle)
        _wait_go(3)
        seconds, argv, environment = _read_step(3)
        _exit_like(_watch(3, _spawn(argv, environment), time.monotonic() + seconds))
    finally:
        os._exit(NEVER_STARTED)


def _fork(gate: int, out: int, err: int, devnull: int, idle: float) -> int:
    """A shim for one step, leading its session once this returns its pid."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        _forked(gate, out, err, devnull, ready_write, idle)
    os.close(ready_write)
    os.read(ready_read, 1)  # EOF once the child called setsid (or died)
    os.close(ready_read)
    return pid


def _send(channel: int, number: int) -> bool:
    try:
        return os.write(channel, b"%011d\n" % number) == MESSAGE_BYTES
    except OSError:  # the executor closed it (or died): nobody to tell
        return False


def _exit_code(pid: int) -> int:
    """The exit code of an exited child, which stays a zombie (its pid stays taken)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if info is None:
        return NEVER_STARTED
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def zygote(control: int) -> None:
    """Fork a shim per request until the executor is done (see the module's docstring)."""
    import socket

    server = socket.socket(fileno=control)
    devnull = os.open(os.devnull, os.O_RDWR)
    poller = select.poll()
    poller.register(control, select.POLLIN)
    exits: dict[int, int] = {}  # pidfd -> pid of a shim running now
    channels: dict[int, int] = {}  # channel -> pid, while the executor holds it open
    channel_of: dict[int, int] = {}  # pid -> its channel, while open
    ended: set[int] = set()  # shims that exited, whose executor has not let go yet
    listening = True
    while listening or channels:
        for fd, _ in poller.poll():
            if fd == control:
                try:
                    message, fds, _, _ = socket.recv_fds(server, 16, 4)
                except OSError:
                    message, fds = b"", []
                if len(fds) != 4:  # EOF (done, or the executor died), or a bad request
                    for stray in fds:
                        os.close(stray)
                    if not message:
                        poller.unregister(control)
                        listening = False
                    continue
                gate, out, err, channel = fds
                try:  # b"f": a shim for a step now; b"s" and seconds: a spare
                    idle = float(message[1:]) if message[:1] == b"s" else -1.0
                except ValueError:
                    idle = 0.0
                pid = _fork(gate, out, err, devnull, idle)
                for used in (gate, out, err):
                    os.close(used)
                pidfd = os.pidfd_open(pid)
                exits[pidfd] = pid
                channels[channel], channel_of[pid] = pid, channel
                poller.register(pidfd, select.POLLIN)
                poller.register(channel, select.POLLIN)  # readable only at EOF
                _send(channel, pid)
            elif fd in exits:  # a shim exited: tell its executor; reap it once let go
                pid = exits.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                code = _exit_code(pid)
                if pid in channel_of:
                    _send(channel_of[pid], code)
                    ended.add(pid)
                else:
                    os.waitpid(pid, 0)
            elif fd in channels:  # the executor let go of this shim (or died)
                pid = channels.pop(fd)
                del channel_of[pid]
                poller.unregister(fd)
                os.close(fd)
                if pid in ended:
                    ended.discard(pid)
                    os.waitpid(pid, 0)
    # whatever still runs carries on under its own gate; init reaps it


def main() -> None:
    if sys.argv[1] == "zygote":
        zygote(int(sys.argv[2]))
        return
    gate = int(sys.argv[1])
    os.set_inheritable(gate, False)  # the program need not hold the executor's pipe
    signal.signal(signal.SIGTERM, _survive_term)  # a handler, unlike SIG_IGN, is not inherited
    environment: Environment | None = None  # the executor's, inherited
    argv: list[bytes] | list[str]
    if len(sys.argv) == 3:
        _wait_claim(gate, float(sys.argv[2]))
        _wait_go(gate)
        seconds, argv, environment = _read_step(gate)
    else:
        _wait_go(gate)
        seconds, argv = float(sys.argv[2]), sys.argv[3:]
    deadline = time.monotonic() + seconds
    status = _watch(gate, _spawn(argv, environment), deadline)
    _exit_like(status)


if __name__ == "__main__":
    main()
