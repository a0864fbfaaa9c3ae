"""Watching processes the tests started (by pid, never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def gone(pid: int) -> bool:
    """The process no longer runs (it may be a zombie waiting for its parent to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_group_of(pid: int) -> None:
    """Clean-up after a failed test: kill the process group ``pid`` is in, if it still runs."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)


def wait_for_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    return path.read_text().strip()


def default_sigint() -> None:
    """For ``preexec_fn``: a background job (``make test &``) inherits an ignored SIGINT,
    and a child keeps it ignored; a test that sends Ctrl-C must undo that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
