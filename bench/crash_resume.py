"""Crash in the middle of a backout, then continue: `backout resume` vs re-running a plain
shell script, side by side. A 10-step backout where even-numbered steps are not idempotent
(each appends a line, as a payment refund or a migration would) is killed with SIGKILL
inside every step in turn; then each side continues as it can.

    .venv/bin/python bench/crash_resume.py

Prints, over all kill points: how many non-idempotent steps ran twice, and the median time
from the kill to a finished backout.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = 10


def plan_text() -> str:
    steps = "".join(
        f"  - name: step {n}\n"
        f"    run: [sh, -c, 'echo {n} >> side.txt; [ \"$SLOW_STEP\" != {n} ] || sleep 30']\n"
        f"    timeout: 60s\n    idempotent: {str(n % 2 == 1).lower()}\n"
        for n in range(1, STEPS + 1)
    )
    return f"plan: bench-crash\nsteps:\n{steps}"


def script_text() -> str:
    return "#!/bin/sh\nset -e\n" + "".join(
        f'echo {n} >> side.txt; [ "$SLOW_STEP" != {n} ] || sleep 30\n' for n in range(1, STEPS + 1)
    )


def kill_inside(argv: list[str], folder: Path, step: int, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        argv,
        cwd=folder,
        env={**env, "SLOW_STEP": str(step)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    side = folder / "side.txt"
    while not (side.exists() and str(step) in side.read_text().split()):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the executor's whole group: a script's steps too,
    proc.wait()  # and a backout step's shim kills its own group when it sees the executor die


def duplicates(folder: Path) -> int:
    seen = (folder / "side.txt").read_text().split()
    return sum(seen.count(str(n)) - 1 for n in range(2, STEPS + 1, 2))


def backout_side(step: int) -> tuple[int, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-backout-"))
    (folder / "plan.yaml").write_text(plan_text())
    env = {**os.environ, "BACKOUT_DATABASE_URL": f"sqlite:///{folder}/b.db"}
    backout = [sys.executable, "-m", "backout"]
    kill_inside([*backout, "run", "plan.yaml"], folder, step, env)
    started = time.perf_counter()
    run_id = subprocess.run(
        [*backout, "runs", "--json"],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split('"run_id": "')[1][:12]
    result = subprocess.run([*backout, "resume", run_id], cwd=folder, env=env, capture_output=True)
    if result.returncode == 3:  # the operator looks at side.txt: the step took effect
        subprocess.run(
            [*backout, "resume", run_id, "--mark-done", str(step)],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
        )
    return duplicates(folder), time.perf_counter() - started


def shell_side(step: int) -> tuple[int, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-shell-"))
    (folder / "backout.sh").write_text(script_text())
    kill_inside(["sh", "backout.sh"], folder, step, dict(os.environ))
    started = time.perf_counter()
    subprocess.run(["sh", "backout.sh"], cwd=folder, check=True, capture_output=True)
    return duplicates(folder), time.perf_counter() - started


def main() -> None:
    ours = [backout_side(step) for step in range(1, STEPS + 1)]
    theirs = [shell_side(step) for step in range(1, STEPS + 1)]
    print(f"{STEPS}-step backout killed inside each step in turn ({STEPS} crashes per side)")
    print(f"{'':<26}{'backout resume':>16}{'re-run shell':>14}")
    print(
        f"{'non-idempotent re-runs':<26}{sum(d for d, _ in ours):>16}"
        f"{sum(d for d, _ in theirs):>14}"
    )
    print(
        f"{'median kill→finished':<26}{statistics.median(t for _, t in ours):>15.2f}s"
        f"{statistics.median(t for _, t in theirs):>13.2f}s"
    )


if __name__ == "__main__":
    main()
