"""Ctrl-C on a real `backout run`: exit 130, the step's own processes are stopped too, and
the run can be resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backout import commands
from backout.settings import Settings
from tests.callers import caller
from tests.e2e import procs


def test_ctrl_c_stops_the_step_and_leaves_a_resumable_run(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(
        "plan: c\nsteps:\n  - name: long\n    run: [sh, -c, 'echo $$ > pid; sleep 60']\n"
        "    idempotent: true\n"
    )
    url = f"sqlite:///{tmp_path}/store.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "backout", "--db", url, "run", "plan.yaml"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=procs.default_sigint,  # Ctrl-C reaches it even when the suite runs in `&`
    )
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in stderr
    run_id = commands.runs(caller(Settings(database_url=url)))[0].run_id
    assert f"continue it with `backout resume {run_id}`" in stderr
    step_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not procs.gone(step_pid):
        assert time.monotonic() < deadline, "the step's process survived Ctrl-C"
        time.sleep(0.05)
    assert commands.status(caller(Settings(database_url=url)), run_id).status == "running"
