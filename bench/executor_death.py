"""The executor dies inside a step, and someone takes over at once: does any step run in
two copies at the same time, or any non-idempotent effect happen twice?

A 5-step backout (steps 2 and 4 not idempotent) is killed inside each step in turn, the
way the OOM killer does it (SIGKILL to the executor's pid only), ROUNDS times per step.
At once a taker-over continues:

* ``backout`` (on SQLite, then on PostgreSQL): ``backout resume``; when it asks about an
  interrupted non-idempotent step, the operator looks for the step's effect and answers
  ``--mark-done`` if it is there, ``--retry`` if not — as in the incident that prompted
  this bench;
* a plain shell script doing the same steps: re-run from the top, as a supervisor would.

Each step holds an exclusive ``flock`` while it works and writes begin/end marks with
timestamps, so two live copies are caught either way (the second cannot take the lock;
their intervals overlap).

    .venv/bin/python bench/executor_death.py [--rounds 4]

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pgdb import throwaway_database

STEPS = 5
NOT_IDEMPOTENT = {2, 4}
WORK_S = 1.5  # how long each step works while holding its lock
BACKOUT = [sys.executable, "-m", "backout"]

STEP = (
    "exec 9>lock-{n}; flock -n 9 || {{ echo overlap {n} >> marks; exit 1; }}; "
    'echo "begin {n} $(date +%s.%N) $$" >> marks; echo $$ > inside-{n}; sleep {work}; '
    'echo "effect {n}" >> marks; echo "end {n} $(date +%s.%N) $$" >> marks'
)


def plan_text() -> str:
    steps = "".join(
        f"  - name: step {n}\n    run: [sh, -c, '{STEP.format(n=n, work=WORK_S)}']\n"
        f"    timeout: 60s\n    idempotent: {str(n not in NOT_IDEMPOTENT).lower()}\n"
        for n in range(1, STEPS + 1)
    )
    return f"plan: bench-death\nservice: bench-death\nsteps:\n{steps}"


def script_text() -> str:
    return "#!/bin/sh\nset -e\n" + "".join(
        f"sh -c '{STEP.format(n=n, work=WORK_S)}'\n" for n in range(1, STEPS + 1)
    )


@dataclass
class Tally:
    kills: int = 0
    overlaps: int = 0
    doubled: int = 0

    def add(self, folder: Path) -> None:
        marks = read_marks(folder)
        self.kills += 1
        self.overlaps += sum(1 for m in marks if m[0] == "overlap") + interval_overlaps(marks)
        effects = [int(m[1]) for m in marks if m[0] == "effect"]
        self.doubled += sum(effects.count(n) - 1 for n in NOT_IDEMPOTENT if effects.count(n) > 1)


def read_marks(folder: Path) -> list[list[str]]:
    path = folder / "marks"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def interval_overlaps(marks: list[list[str]]) -> int:
    """Pairs of executions of one step whose [begin, end] intervals intersect."""
    spans: dict[tuple[str, str], list[float]] = {}
    for mark in marks:
        if mark[0] in ("begin", "end"):
            spans.setdefault((mark[1], mark[3]), []).append(float(mark[2]))
    found = 0
    by_step: dict[str, list[tuple[float, float]]] = {}
    for (step, _pid), times in spans.items():
        by_step.setdefault(step, []).append((times[0], times[-1] if len(times) > 1 else times[0]))
    for intervals in by_step.values():
        intervals.sort()
        found += sum(1 for a, b in itertools.pairwise(intervals) if b[0] < a[1])
    return found


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def kill_inside(argv: list[str], folder: Path, step: int, env: dict[str, str]) -> int:
    """Start ``argv``, SIGKILL its pid (only) while ``step`` works; the step's pid."""
    proc = subprocess.Popen(
        argv, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    marker = folder / f"inside-{step}"
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"step {step} never started")
        time.sleep(0.01)
    step_pid = int(marker.read_text())
    marker.unlink()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return step_pid


def backout_round(url: str, step: int) -> tuple[Path, int]:
    folder = Path(tempfile.mkdtemp(prefix="bench-death-"))
    (folder / "plan.yaml").write_text(plan_text())
    env = {**os.environ, "BACKOUT_DATABASE_URL": url}
    step_pid = kill_inside([*BACKOUT, "run", "plan.yaml"], folder, step, env)
    runs = subprocess.run(
        [*BACKOUT, "runs", "--json"], cwd=folder, env=env, capture_output=True, text=True
    )
    run_id = json.loads(runs.stdout)[0]["run_id"]
    result = subprocess.run(
        [*BACKOUT, "resume", run_id, "--json"], cwd=folder, env=env, capture_output=True
    )
    if result.returncode == 3:  # the operator looks for the step's effect
        effects = [m for m in read_marks(folder) if m[:2] == ["effect", str(step)]]
        decision = "--mark-done" if effects else "--retry"
        argv = [*BACKOUT, "resume", run_id, decision, str(step)]
        result = subprocess.run(argv, cwd=folder, env=env, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"resume failed: {result.stderr.decode()[-500:]}")
    return folder, step_pid


def script_round(step: int) -> tuple[Path, int]:
    folder = Path(tempfile.mkdtemp(prefix="bench-death-sh-"))
    (folder / "backout.sh").write_text(script_text())
    step_pid = kill_inside(["sh", "backout.sh"], folder, step, dict(os.environ))
    subprocess.run(["sh", "backout.sh"], cwd=folder, capture_output=True)
    return folder, step_pid


def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def tally(rounds: int, one: Callable[[int], tuple[Path, int]]) -> Tally:
    result = Tally()
    for _ in range(rounds):
        for step in range(1, STEPS + 1):
            folder, step_pid = one(step)
            wait_gone(step_pid, WORK_S + 5)  # a survivor still works: let it write its marks
            result.add(folder)
            shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="kills per step per side")
    rounds = parser.parse_args().rounds
    sqlite_dir = Path(tempfile.mkdtemp(prefix="bench-death-db-"))
    sqlite_url = f"sqlite:///{sqlite_dir}/b.db"
    sides = {"backout, SQLite": tally(rounds, lambda s: backout_round(sqlite_url, s))}
    with throwaway_database("bench_death") as url:
        sides["backout, PostgreSQL"] = tally(rounds, lambda s: backout_round(url, s))
    sides["re-run shell script"] = tally(rounds, script_round)
    shutil.rmtree(sqlite_dir, ignore_errors=True)
    print(f"{STEPS}-step backout, executor SIGKILLed inside each step in turn, taken over at once")
    print(f"{'':<24}{'kills':>7}{'overlaps':>10}{'doubled':>9}")
    for name, t in sides.items():
        print(f"{name:<24}{t.kills:>7}{t.overlaps:>10}{t.doubled:>9}")
    print("overlaps: two copies of one step alive at once; doubled: a non-idempotent effect twice")


if __name__ == "__main__":
    main()
