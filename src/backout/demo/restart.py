#!/usr/bin/env python3
"""Restart the demo service (standard library only; installed as the demo's ``bin/restart``).

Usage: bin/restart PORT

Stops the process in run/service.pid, then starts releases/current/service.py detached:
its own session, output to logs/service.log. A child that kept our stdout open would make
whoever captures this script's output (the backout engine) wait until the service exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIDFILE = ROOT / "run" / "service.pid"
STOP_TIMEOUT_S = 3.0


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may linger where nothing reaps it)."""
    if Path("/proc/self").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(pid: int) -> bool:
    """Never signal a stranger that reused a stale pid."""
    if not Path("/proc/self").exists():
        return True
    try:
        return str(ROOT) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def stop() -> None:
    try:
        pid = int(PIDFILE.read_text())
    except (OSError, ValueError):
        return
    if not is_running(pid) or not is_ours(pid):
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if is_running(pid):
        os.killpg(pid, signal.SIGKILL)


def start(port: str) -> int:
    (ROOT / "logs").mkdir(exist_ok=True)
    PIDFILE.parent.mkdir(exist_ok=True)
    with (ROOT / "logs" / "service.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "releases" / "current" / "service.py"), "--port", port],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    PIDFILE.write_text(str(proc.pid))
    return proc.pid


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: bin/restart PORT")
    stop()
    pid = start(sys.argv[1])
    release = os.readlink(ROOT / "releases" / "current")
    print(f"started release {release} as pid {pid} on port {sys.argv[1]}")


if __name__ == "__main__":
    main()
