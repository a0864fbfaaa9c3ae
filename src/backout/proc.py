"""Run a process without a shell, with a hard timeout that kills its whole process group,
and with one owner: it never outlives the executor unobserved.

Every process starts under :mod:`backout.stepshim`, which leads its own process group,
waits for the executor's *go* before it starts the program, and kills the whole group if
the executor dies (its gate pipe reads EOF). Before saying *go*, the executor hands the
shim's identity to the ``SPAWN_HOOK`` of the step being run (the engine journals it), so
whoever takes the run over can find — and kill — a step that is still running.

Output goes to an unlinked temporary file, not a pipe: the step ends when its process
exits, even if it started a daemon that keeps the output open (a restart script), and a
timeout never waits on anything but the process itself.

A shim takes a Python start-up (10-20 ms) before it can start a program. So each step's
go starts a *spare* shim for the next one: it starts up while the step runs, waits on
its own gate, and is handed the next step's program, folder and environment with its go.
A spare runs nothing until then; if this process dies first, it reads EOF and exits, and
one not claimed within ``SPARE_IDLE_S`` exits on its own (the executor claims a spare
before it journals it, so a journalled shim never goes away by itself).

While a run executes (:func:`shim_zygote`), shims — spares included — come from a
*zygote* instead: one small Python process, started with the run, that forks a shim on
request (a fork takes about a millisecond, a Python start-up 15-30 ms of CPU): the same
shim, in a session of its own, waiting for the same claim and go. The zygote is the shim's
parent: it tells this process the shim's pid, then its exit code, on a socket of that
shim's own, whose end also wakes the wait. When the zygote is gone, steps start their
shims (and spares) as new Pythons again.

The executor waits for a step's end on a pidfd (Linux 5.3+): the kernel wakes it the
moment the shim exits, where ``Popen.wait`` with a timeout polls in sleeps of up to 50 ms.
A stop needs no wake-up of its own: it kills the step's group, which ends the shim.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import errno
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

from backout.errors import ActionError
from backout.stepshim import MESSAGE_BYTES, NEVER_STARTED
from backout.stop import STOP, Stopped

TAIL_BYTES = 4096
SHIM = str(Path(__file__).with_name("stepshim.py"))
TERM_GRACE_S = 2.0  # on a graceful stop: SIGTERM to a step's group, then SIGKILL after this
BACKSTOP_S = 2.0  # the shim kills its group this long after the step's timeout, on its own
SPARE_IDLE_S = 5.0  # a spare shim nobody claimed by then exits
ZYGOTE_ANSWER_S = 10.0  # a zygote that forks no shim within this is given up on


@dataclass(frozen=True)
class Spawned:
    """Where a step's process group lives: enough for another executor to find it."""

    pid: int  # the shim, leader of the group (pgid == pid)
    start: int | None  # its start time in clock ticks since boot: tells pid reuse apart
    host: str
    boot_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "host": self.host, "boot_id": self.boot_id}


# Set by the engine around a step's action: journals the group before the program starts.
SPAWN_HOOK: ContextVar[Callable[[Spawned], None] | None] = ContextVar(
    "backout_spawn_hook", default=None
)


@dataclass
class _Live:
    stopped: bool = False
    owner: str | None = None  # STEP_OWNER when the step started: the run it belongs to


# the run a step belongs to, set by its executor (several run in one server process): a
# graceful stop of one run ends that run's steps, not those of runs still draining
STEP_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "backout_step_owner", default=None
)


_LIVE: dict[int, _Live] = {}  # process groups of steps running now
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProcResult:
    exit_code: int | None  # None when it timed out
    output: str  # merged stdout/stderr, tail only (stdout alone with ``separate_stderr``)
    timed_out: bool
    stderr: str = ""  # only with ``separate_stderr``

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def tail(text: str, limit: int = TAIL_BYTES) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


# --- identity -----------------------------------------------------------------------------
def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None if it is gone/unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: fields start after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def this_host() -> tuple[str, str | None]:
    return socket.gethostname(), boot_id()


def alive(pid: int, start: int | None) -> bool:
    """Is the process that had this pid and start time still running (not a zombie)?
    With no start time to compare (no /proc), a live pid counts as alive."""
    now = start_time(pid)
    if now is None:
        if Path("/proc").is_dir():
            return False
        try:  # no /proc: all we can ask is whether the pid exists
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return start is None or now == start


# --- running --------------------------------------------------------------------------------
def _resolve(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Refuse a program that cannot start, with the same words as before the shim existed."""
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else cwd / program
        found = path if path.exists() else None
    else:
        which = shutil.which(program, path=env.get("PATH", os.defpath))
        found = Path(which) if which else None
    if found is None:
        raise ActionError(
            f"command not found: {program}",
            hint="use a path relative to the plan file, or a program on PATH",
        )
    if found.is_dir() or not os.access(found, os.X_OK):
        raise ActionError(f"not executable: {program}", hint=f"chmod +x {program}")


class _Forked:
    """A shim the zygote forks: its pid once the zygote says it (asked for ahead of its
    step, a spare's fork overlaps the step before), and its exit code when the zygote
    tells it on the step's channel (the shim is the zygote's child). Until
    :meth:`release`, the zygote does not reap it: its pid cannot go to another process
    while this one may signal it."""

    def __init__(self, channel: socket.socket, zygote: _Zygote) -> None:
        self.channel = channel
        self.zygote = zygote
        self._pid: int | None = None
        self.failed = False  # the zygote forked nothing (gone, or it did not answer)
        self.returncode: int | None = None
        self.orphaned = False  # the zygote died first: the exit code is unknown

    def started(self) -> bool:
        """Wait for the zygote's fork; False when it forked nothing (it is given up on)."""
        if self._pid is None and not self.failed:
            message = b""
            if _readable(self.channel.fileno(), ZYGOTE_ANSWER_S):
                message = _receive(self.channel, MESSAGE_BYTES)
            if len(message) == MESSAGE_BYTES:
                self._pid = int(message)
            else:
                self.failed = self.zygote.broken = True
        return self._pid is not None

    @property
    def pid(self) -> int:
        if not self.started():
            raise BrokenPipeError("the shim zygote forked no shim")
        assert self._pid is not None
        return self._pid

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        if not self.started():
            self.returncode = NEVER_STARTED
            return self.returncode
        if timeout is not None and not _readable(self.channel.fileno(), timeout):
            raise subprocess.TimeoutExpired(["stepshim"], timeout)
        message = _receive(self.channel, MESSAGE_BYTES)
        if len(message) == MESSAGE_BYTES:
            self.returncode = int(message)
        else:  # the zygote is gone: the shim has no parent left to tell its end
            self.orphaned = True
            _kill_group(self.pid)
            _wait_gone(self.pid)
            self.returncode = -signal.SIGKILL
        return self.returncode

    def release(self) -> None:
        """Done with the shim: the zygote may reap it."""
        self.channel.close()


Shim: TypeAlias = subprocess.Popen[bytes] | _Forked


def _readable(fd: int, seconds: float) -> bool:
    """``poll``, not ``select``: descriptors above 1024 in a busy server."""
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    deadline = time.monotonic() + seconds
    while True:  # poll takes milliseconds, and a signal's handler may end it early
        left = deadline - time.monotonic()
        if waiter.poll(max(0, math.ceil(left * 1000))):
            return True
        if left <= 0:
            return False


def _receive(channel: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _wait_gone(pid: int) -> None:
    """Wait for a process that is not this one's child to end (its group was killed)."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        _readable(fd, 30.0)
    finally:
        os.close(fd)


@dataclass
class _Shim:
    """A shim waiting for its go, with the files its step's output will go to."""

    proc: Shim
    gate: int  # the write end: "go" (and the step), or EOF when this process dies
    output: IO[bytes]
    errors: IO[bytes]

    def discard(self) -> None:
        """Kill a shim that never got its go (nothing of a step runs in it) and reap it."""
        if _forked(self):
            _kill_group(self.proc.pid)
            self.proc.wait()
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.gate)
        self.output.close()
        self.errors.close()
        if isinstance(self.proc, _Forked):
            self.proc.release()


class _Zygote:
    """The fork server of this process's shims (see :mod:`backout.stepshim`)."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", SHIM, "zygote", str(theirs.fileno())],
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # no terminal's signals, no group of this process
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.socket = mine
        self.lock = threading.Lock()
        self.broken = False

    def fork(self, idle: float | None = None) -> _Shim:
        """Ask for a new shim, waiting for its go (a spare, waiting for its claim first, for
        up to ``idle`` seconds); its pid comes when asked for (:meth:`_Forked.started`).
        OSError when the zygote is gone."""
        output = tempfile.TemporaryFile()  # noqa: SIM115 (the shim's; closed with it)
        errors = tempfile.TemporaryFile()  # noqa: SIM115
        gate_read, gate_write = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        request = b"f" if idle is None else b"s%g" % idle
        try:
            fds = [gate_read, output.fileno(), errors.fileno(), theirs.fileno()]
            with self.lock:
                if self.broken:
                    raise BrokenPipeError("the shim zygote is gone")
                socket.send_fds(self.socket, [request], fds)
        except BaseException:
            self.broken = True
            os.close(gate_write)
            mine.close()
            output.close()
            errors.close()
            raise
        finally:  # the zygote has its copies (or none): the shim's only
            theirs.close()
            os.close(gate_read)
        return _Shim(_Forked(mine, self), gate_write, output, errors)

    def close(self) -> None:
        """Let the zygote go: it exits once no shim of its is still held."""
        with self.lock:
            self.broken = True
            self.socket.close()
        if _exited_within(self.proc, 5.0):  # woken at its exit, not polled for
            self.proc.wait()

    def forget(self) -> None:
        """In a forked child: the parent's zygote stays the parent's."""
        self.socket.close()


_ZYGOTE: list[_Zygote] = []  # at most one, while at least one run executes here
_ZYGOTE_USERS = [0]
_ZYGOTE_LOCK = threading.Lock()


@contextlib.contextmanager
def shim_zygote() -> Iterator[None]:
    """Fork the shims of steps run meanwhile from a zygote, started when the first of them
    needs a shim (a run without processes starts none), shared by the runs executing in
    this process at the same time; it goes with the last of them."""
    with _ZYGOTE_LOCK:
        _ZYGOTE_USERS[0] += 1
    try:
        yield
    finally:
        with _ZYGOTE_LOCK:
            _ZYGOTE_USERS[0] -= 1
            done = list(_ZYGOTE) if _ZYGOTE_USERS[0] == 0 else []
            if done:
                _ZYGOTE.clear()
        for zygote in done:
            zygote.close()


def _pidfds_work() -> bool:
    """The zygote waits for its shims on pidfds (Linux 5.3+)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def _working_zygote() -> _Zygote | None:
    """The zygote, started now if a run executes here and none was yet."""
    with _ZYGOTE_LOCK:
        if not _ZYGOTE and _ZYGOTE_USERS[0] > 0 and _pidfds_work():
            try:
                _ZYGOTE.append(_Zygote())
            except OSError:  # none: this step starts its shim as before
                return None
        return _ZYGOTE[0] if _ZYGOTE and not _ZYGOTE[0].broken else None


def ready_zygote() -> None:
    """Start the zygote now, if a run executes here and has none yet: a run about to wait
    for a trigger (a watch, a deploy's checkpoint) calls this, so the first backout step
    forks its shim in a millisecond instead of waiting for a Python to start."""
    _working_zygote()


def _zygote_shim() -> _Shim | None:
    """A shim from the zygote, if there is a working one."""
    zygote = _working_zygote()
    if zygote is None:
        return None
    try:
        shim = zygote.fork()
    except OSError:  # gone (killed?): this step and the next start their own shims
        return None
    if not _forked(shim):
        shim.close()
        return None
    return shim


def _forked(shim: _Shim) -> bool:
    """Is the shim there (a fork the zygote made, not one it failed to make)?"""
    return not isinstance(shim.proc, _Forked) or shim.proc.started()


def _forget_zygote_in_child() -> None:
    for zygote in _ZYGOTE:
        with contextlib.suppress(OSError):
            zygote.forget()
    _ZYGOTE.clear()
    _ZYGOTE_USERS[0] = 0


_SPARE: list[_Shim] = []  # at most one shim started ahead of the next step
_SPARE_LOCK = threading.Lock()


def _start_shim() -> _Shim:
    """A shim in a session of its own (a timeout or a stop kills its children too), in
    ``/`` until it is told the step's folder."""
    output = tempfile.TemporaryFile()  # noqa: SIM115 (the shim's; closed with it)
    errors = tempfile.TemporaryFile()  # noqa: SIM115
    gate_read, gate_write = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", SHIM, str(gate_read), f"{SPARE_IDLE_S:g}"],
            cwd="/",
            stdout=output,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(gate_read,),
        )
    except BaseException:
        os.close(gate_write)
        output.close()
        errors.close()
        raise
    finally:
        os.close(gate_read)
    return _Shim(proc, gate_write, output, errors)


def _take_shim(program: str) -> _Shim:
    """The spare shim (forked by the zygote, or a Python of its own), claimed, if one is
    still there; else one the zygote forks now; else a new one."""
    with _SPARE_LOCK:
        spare = _SPARE.pop() if _SPARE else None
    if spare is not None and _forked(spare) and _claimed(spare):
        return spare
    if spare is not None:  # it went away idle (or was killed): it ran nothing
        spare.discard()
    forked = _zygote_shim()
    if forked is not None:
        return forked
    try:
        shim = _start_shim()
    except OSError as exc:
        raise ActionError(f"cannot start {program}: {exc}") from exc
    if not _claimed(shim):
        shim.discard()
        raise ActionError(f"cannot start {program}: its shim exited at once")
    return shim


def _claimed(shim: _Shim) -> bool:
    try:
        os.write(shim.gate, b"c")
    except OSError:  # a broken pipe: the spare is gone
        return False
    return True


def _start_spare() -> None:
    """Start the next step's shim now, so that its start-up overlaps this step."""
    if STOP.requested:
        return
    zygote = _working_zygote()
    with _SPARE_LOCK:
        if _SPARE:
            return
        with contextlib.suppress(OSError):  # no spare: the next step starts its own
            # forked by the zygote while this step runs; else a Python of its own
            _SPARE.append(zygote.fork(SPARE_IDLE_S) if zygote else _start_shim())


def prepare_spare() -> None:
    """Fork the next step's shim now, in the background, if this process's zygote is up
    and no spare is: a run about to back out calls this as it writes its verdict, so its
    first backout step finds its shim forked instead of waiting for the fork (a spare
    forked while a run only waits would idle out long before an alert). Never starts a
    zygote, nor a shim as a Python of its own."""
    with _ZYGOTE_LOCK:
        up = bool(_ZYGOTE) and not _ZYGOTE[0].broken
    if up and not _SPARE and not STOP.requested:
        threading.Thread(target=_start_spare, name="backout-spare", daemon=True).start()


def drop_spare() -> None:
    """Kill the spare shim, if any (at exit; a forked child forgets its parent's)."""
    with _SPARE_LOCK:
        spares = list(_SPARE)
        _SPARE.clear()
    for spare in spares:
        spare.discard()


def _forget_spare_in_child() -> None:
    for spare in _SPARE:  # the parent's: its gate stays the parent's to close
        with contextlib.suppress(OSError):
            os.close(spare.gate)
    _SPARE.clear()


def _step_message(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], seconds: float, merge: bool
) -> bytes:
    """What a shim reads with its go (see :mod:`backout.stepshim`)."""
    fields = [f"{seconds:.3f}", "1" if merge else "0", str(cwd), str(len(argv)), *argv]
    fields += [f"{key}={value}" for key, value in env.items()]
    body = b"\0".join(os.fsencode(field) for field in fields)
    return b"g" + b"%010d" % len(body) + body


def _check_folder(program: str, cwd: Path) -> None:
    """Refuse a folder that does not exist as starting the program there would have."""
    if not cwd.is_dir():
        missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(cwd))
        raise ActionError(f"cannot start {program}: {missing}")


def _read_tail(output: IO[bytes]) -> str:
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - TAIL_BYTES * 4))  # up to 4 bytes per character
    return tail(output.read().decode(errors="replace"))


def _announce(proc: Shim) -> None:
    """Journal the group (through the step's hook) before the program may start."""
    hook = SPAWN_HOOK.get()
    if hook is not None:
        host, boot = this_host()
        hook(Spawned(proc.pid, start_time(proc.pid), host, boot))
    if STOP.killing.is_set():  # stopping now (not draining): do not start anything new
        raise Stopped(STOP.signum)


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    separate_stderr: bool = False,
) -> ProcResult:
    """Run ``argv`` to its end or ``timeout``. Raises ActionError when it cannot start, and
    :class:`~backout.stop.Stopped` when a stop killed it."""
    full_env = {**os.environ, **(env or {})}
    _resolve(argv[0], cwd, full_env)
    _check_folder(argv[0], cwd)
    shim = _take_shim(argv[0])
    proc = shim.proc
    message = _step_message(argv, cwd, full_env, timeout + BACKSTOP_S, not separate_stderr)
    try:
        live = _track(proc.pid)
        try:
            _announce(proc)
            _go(shim.gate, live, message)
            _start_spare()
            timed_out = _wait(proc, timeout)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            # after the shim ended: its EOF means "the executor died"
            os.close(shim.gate)
            _untrack(proc.pid)
        if live.stopped:
            raise Stopped(STOP.signum)
        if isinstance(proc, _Forked) and proc.orphaned:
            raise ActionError(
                "lost the step's process: its shim zygote died, and its group was killed"
            )
        return ProcResult(
            None if timed_out else proc.returncode,
            _read_tail(shim.output),
            timed_out,
            _read_tail(shim.errors) if separate_stderr else "",
        )
    finally:
        shim.output.close()
        shim.errors.close()
        if isinstance(proc, _Forked):
            proc.release()  # after the group is untracked: a stop no longer signals it


def _go(gate_write: int, live: _Live, message: bytes = b"g") -> None:
    """Let the shim start the program. A shim already gone was killed before it could:
    by a stop (the step was interrupted, not failed), or by someone else."""
    try:
        view = memoryview(message)
        while view:  # a large environment may not fit in the pipe at once
            view = view[os.write(gate_write, view) :]
    except BrokenPipeError:
        if live.stopped or STOP.killing.is_set():
            raise Stopped(STOP.signum) from None
        raise ActionError("the step's process was killed before its program started") from None


def _wait(proc: Shim, timeout: float) -> bool:
    """Wait for the process; on timeout kill its group. True when it timed out."""
    if _exited_within(proc, timeout):
        proc.wait()
        return False
    _kill_group(proc.pid)
    proc.wait()
    return True


def _exited_within(proc: Shim, timeout: float) -> bool:
    """Woken by the kernel the moment the process exits (a pidfd), where Popen.wait with a
    timeout polls with growing sleeps and wakes up to 50 ms late, every step. ``poll``, not
    ``select``: a process with a thousand files open (a server) has pidfds above 1024. A
    shim from the zygote: woken by its exit code on the step's channel."""
    if isinstance(proc, _Forked):
        return _readable(proc.channel.fileno(), timeout)
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        return _readable(fd, timeout)
    finally:
        os.close(fd)


def _track(pgid: int) -> _Live:
    with _LIVE_LOCK:
        live = _LIVE[pgid] = _Live(owner=STEP_OWNER.get())
    return live


def _untrack(pgid: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(pgid, None)


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Does any process of the group still run (zombies waiting to be reaped do not)?"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _wait_groups_gone(groups: Sequence[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = [pgid for pgid in groups if group_alive(pgid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [pgid for pgid in left if group_alive(pgid)]
    return left


def stop_all(grace: float | None = None, owner: str | None = None) -> bool:
    """Stop every step running now (``owner``: only those of that run): SIGTERM to each
    group, SIGKILL to what is left after ``grace`` seconds. The steps' callers see
    :class:`~backout.stop.Stopped`, not a failure. True when every group is gone."""
    with _LIVE_LOCK:
        groups = [
            (pgid, live) for pgid, live in _LIVE.items() if owner is None or live.owner == owner
        ]
        for _, live in groups:
            live.stopped = True
    pgids = [pgid for pgid, _ in groups]
    for pgid in pgids:
        _kill_group(pgid, signal.SIGTERM)
    survivors = _wait_groups_gone(pgids, TERM_GRACE_S if grace is None else grace)
    for pgid in survivors:
        _kill_group(pgid)
    return not _wait_groups_gone(survivors, 5.0)


def kill_orphan(spawned: Spawned, timeout: float = 10.0) -> bool:
    """Kill a dead executor's step group on this host; True once it is gone. A pid that
    now belongs to another process (a different start time) is left alone: that group is
    gone. Without a recorded start time nothing can be told apart: False."""
    if spawned.start is None:
        return False
    if not alive(spawned.pid, spawned.start):
        return True
    _kill_group(spawned.pid)
    return not _wait_groups_gone([spawned.pid], timeout)


STOP.on_kill(stop_all)
atexit.register(drop_spare)
os.register_at_fork(after_in_child=_forget_spare_in_child)
os.register_at_fork(after_in_child=_forget_zygote_in_child)
