"""Start, find and stop the demo's service processes.

The service runs detached in its own session (so Ctrl-C in the terminal does not reach it),
which means the demo must stop it itself: every process whose command line names the demo
folder is ours, and is stopped, whatever happened before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from backout.errors import BackoutError, UsageError
from backout.proc import alive

PORT_ENV = "BACKOUT_DEMO_PORT"
OWNER_ENV = "BACKOUT_DEMO_OWNER_PID"
START_TIMEOUT_S = 15.0  # bin/restart: up to 3 s to stop, 8 s to answer
STOP_GRACE_S = 1.0
HAS_PROC = Path("/proc/self").exists()


# --- port ------------------------------------------------------------------------------
def choose_port() -> int:
    """BACKOUT_DEMO_PORT when set (it must be free), else a free port the OS picks."""
    preset = os.environ.get(PORT_ENV, "").strip()
    if not preset:
        return _bind(0)
    if not preset.isdigit() or not 0 < int(preset) < 65536:
        raise UsageError(f"{PORT_ENV}={preset!r} is not a port number", hint=f"unset {PORT_ENV}")
    try:
        return _bind(int(preset))
    except OSError as exc:
        raise BackoutError(
            f"the demo cannot listen on 127.0.0.1:{preset}: {exc.strerror}",
            hint=f"set {PORT_ENV} to a free port, or unset it to let the demo pick one",
        ) from exc


def _bind(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return int(sock.getsockname()[1])


# --- start -----------------------------------------------------------------------------
def restart(root: Path, port: int) -> int:
    """Run the demo's own bin/restart (the plan uses the same script), which returns once
    the service answers /health; return the new pid."""
    try:
        result = subprocess.run(
            [str(root / "bin" / "restart"), str(port)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackoutError(
            f"bin/restart did not finish within {START_TIMEOUT_S:g}s",
            hint="the machine may be too busy for the demo; try again",
        ) from exc
    if result.returncode != 0:
        raise BackoutError(
            f"bin/restart failed: {(result.stderr or result.stdout).strip()}",
            hint=f"is port {port} free? set {PORT_ENV} to a free port and try again",
        )
    return int((root / "run" / "service.pid").read_text())


# --- find and stop ---------------------------------------------------------------------
def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie lingers where nothing reaps it)."""
    return alive(pid, None)


def processes_in(root: Path) -> set[int]:
    """Running processes whose command line names ``root`` (the services, bin/restart)."""
    if not HAS_PROC:
        return set()
    needle = str(root).encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes() and is_running(int(entry.name)):
                found.add(int(entry.name))
    return found


def stop_all(root: Path, known: Iterable[int]) -> set[int]:
    """Stop every demo process: TERM, a short grace, then KILL. Return the pids signalled."""
    signalled: set[int] = set()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _ours(root, known)
        for pid in pids:
            _signal(pid, sig)
        signalled |= pids
        deadline = time.monotonic() + STOP_GRACE_S
        while _ours(root, known) and time.monotonic() < deadline:
            time.sleep(0.02)
    return signalled


def _ours(root: Path, known: Iterable[int]) -> set[int]:
    # with /proc the command line proves a known pid is still ours (pids get reused)
    extra = set() if HAS_PROC else {pid for pid in known if is_running(pid)}
    return processes_in(root) | extra


def _signal(pid: int, sig: signal.Signals) -> None:
    """Each service and bin/restart leads its own process group: signal the group."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
