"""What durability costs: a 20-step backout through `backout run` vs a plain shell script
doing the same 20 commands, measured side by side in one run, on SQLite and PostgreSQL.

    .venv/bin/python bench/engine_overhead.py [--steps 20] [--repeat 5]

Prints median wall times and the ratio (backout / shell). The shell script journals
nothing, cannot resume and verifies nothing: the ratio is the price of those promises.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

PG_ADMIN = os.environ.get("BACKOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def write_plan(folder: Path, steps: int) -> Path:
    body = "".join(
        f"  - name: step {i}\n    run: [sh, -c, 'echo {i} >> out.txt']\n    timeout: 10s\n"
        for i in range(steps)
    )
    plan = folder / "plan.yaml"
    plan.write_text(f"plan: bench\nsteps:\n{body}")
    return plan


def write_script(folder: Path, steps: int) -> Path:
    script = folder / "backout.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n" + "".join(f"sh -c 'echo {i} >> out.txt'\n" for i in range(steps))
    )
    return script


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def pg_database() -> tuple[str, str]:
    name = f"backout_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def measure(url: str, steps: int, repeat: int) -> tuple[float, float]:
    """Median wall time of the same backout: (backout run, plain sh)."""
    folder = Path(tempfile.mkdtemp(prefix="backout-bench-"))
    plan, script = write_plan(folder, steps), write_script(folder, steps)
    env = {**os.environ, "BACKOUT_DATABASE_URL": url}
    backout = [sys.executable, "-m", "backout", "run", str(plan)]
    timed(backout, folder, env)  # warm up: creates the schema
    ours, theirs = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine load
        ours.append(timed(backout, folder, env))
        theirs.append(timed(["sh", str(script)], folder, env))
    return statistics.median(ours), statistics.median(theirs)


def row(store: str, url: str, steps: int, repeat: int) -> str:
    ours, theirs = measure(url, steps, repeat)
    one_ours, one_theirs = measure(url, 1, repeat)
    per_ours = (ours - one_ours) / (steps - 1) * 1000
    per_theirs = (theirs - one_theirs) / (steps - 1) * 1000
    return (
        f"{store:<12}{ours:>10.3f}s{theirs:>10.3f}s{ours / theirs:>8.1f}x"
        f"{one_ours:>10.3f}s{per_ours:>9.1f} ms{per_theirs:>9.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    name, pg_url = pg_database()
    try:
        rows = [
            row("sqlite", f"sqlite:///{tempfile.mkdtemp()}/b.db", args.steps, args.repeat),
            row("postgresql", pg_url, args.steps, args.repeat),
        ]
    finally:
        drop(name)
    print(f"{args.steps}-step backout, median of {args.repeat} runs each, interleaved")
    print(
        f"{'store':<12}{'backout':>11}{'plain sh':>11}{'ratio':>9}{'1 step':>11}"
        f"{'per step':>12}{'sh/step':>12}"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
