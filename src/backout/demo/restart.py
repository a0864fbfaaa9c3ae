#!/usr/bin/env python3
"""Restart or stop the demo service (standard library only; installed as ``bin/restart``).

Usage: bin/restart PORT     stop the service, start releases/current, wait until it answers
       bin/restart --stop   stop the service (the deploy's undo of a restart)

The service runs detached: its own session, output to logs/service.log. A child that kept
our stdout open would make whoever captures this script's output (the backout engine) wait
until the service exits. A restart returns once the new process answers /health, so
"restarted" means "live", and exits 1 with the service's last log line when it never does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIDFILE = ROOT / "run" / "service.pid"
LOG = ROOT / "logs" / "service.log"
STOP_TIMEOUT_S = 3.0
READY_TIMEOUT_S = 8.0


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


def stop() -> str:
    try:
        pid = int(PIDFILE.read_text())
    except (OSError, ValueError):
        return "no service to stop"
    if not is_running(pid) or not is_ours(pid):
        return "the service was not running"
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if is_running(pid):
        os.killpg(pid, signal.SIGKILL)
    return f"stopped pid {pid}"


def start(port: str) -> int:
    LOG.parent.mkdir(exist_ok=True)
    PIDFILE.parent.mkdir(exist_ok=True)
    with LOG.open("ab") as log:
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


def wait_until_ready(port: str, pid: int) -> bool:
    """Poll /health until it answers 200; give up when the process died or time is up."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and is_running(pid):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1.0) as reply:
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    return False


def last_log_line() -> str:
    try:
        lines = LOG.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no service log"
    return lines[-1] if lines else "the service log is empty"


def main() -> None:
    if sys.argv[1:] == ["--stop"]:
        print(stop())
        return
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: bin/restart PORT | bin/restart --stop")
    stop()
    port = sys.argv[1]
    release = os.readlink(ROOT / "releases" / "current")
    pid = start(port)
    if not wait_until_ready(port, pid):
        sys.exit(f"release {release} (pid {pid}) did not answer on port {port}: {last_log_line()}")
    print(f"release {release} is live as pid {pid} on port {port}")


if __name__ == "__main__":
    main()
