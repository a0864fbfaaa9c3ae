"""Takeover: an executor is killed (SIGKILL, by its PID) mid-run; how long until a running
`backout worker` has journalled ``run_resumed``? With the default settings (a 5 s lease
renewed every second, a worker polling every 2 s), on SQLite and then on PostgreSQL.

Two cases, ROUNDS times each:

* **another host**: the executor runs in a UTS namespace of its own (``unshare --uts``, as
  root) under another host name, so the worker cannot see that its process is gone and
  must wait for the lease to expire. It is killed while it watches (no step in flight: a
  step in flight on another host may still be running there, and waits for its timeout).
  The kill lands at a random moment of the heartbeat's second.
* **this host**: killed inside a step; the worker sees that the owner's process is gone,
  stops what is left of the step and resumes at once — as soon as it looks.

    .venv/bin/python bench/takeover.py [--rounds 10] [--store sqlite|postgres|both]

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from pgdb import throwaway_database

BACKOUT = [sys.executable, "-m", "backout"]
OTHER_HOST = "backout-bench-elsewhere"
WATCHED = """\
plan: watched
service: {service}
triggers:
  - name: paged
    alertmanager: {{match: {{service: {service}}}}}
steps:
  - name: back out
    run: ["true"]
"""
STEPPED = """\
plan: stepped
service: {service}
steps:
  - name: first
    run: ["true"]
  - name: slow
    run: [sh, -c, 'echo $$ > inside; sleep 3']
    timeout: 30s
    idempotent: true
"""


def rows(url: str, query: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the store with the database's own client (not backout)."""
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return list(conn.execute(query.replace("?", "%s"), args).fetchall())  # type: ignore[arg-type]
    path = url.removeprefix("sqlite:///")
    if not Path(path).exists():
        return []
    with sqlite3.connect(path, timeout=30) as conn:
        return list(conn.execute(query, args).fetchall())


def events(url: str, service: str) -> list[tuple[str, str, float, int | None]]:
    try:
        found = rows(
            url,
            "SELECT j.run_id, j.kind, j.at, j.step FROM journal j JOIN runs r ON r.id = j.run_id "
            "WHERE r.service = ? ORDER BY j.id",
            (service,),
        )
    except (psycopg.Error, sqlite3.Error):
        return []  # the store is being created
    return [(str(r), str(k), float(a), s) for r, k, a, s in found]  # type: ignore[misc]


def wait_for(what: str, probe: Callable[[], object], timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.01)
    return value


def has(url: str, service: str, kind: str, step: int | None = None) -> bool:
    return any(k == kind and (step is None or s == step) for _, k, _, s in events(url, service))


def spawn(argv: list[str], url: str, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=folder,
        env={**os.environ, "BACKOUT_DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def resumed_after(url: str, service: str, killed_at: float) -> float:
    found = wait_for(
        "run_resumed",
        lambda: [at for _, kind, at, _ in events(url, service) if kind == "run_resumed"],
    )
    assert isinstance(found, list)
    return float(found[0]) - killed_at


def elsewhere(url: str, folder: Path, n: int) -> float:
    """Killed while watching, on 'another host': the lease must expire first."""
    service = f"elsewhere-{n}"
    (folder / "plan.yaml").write_text(WATCHED.format(service=service))
    command = " ".join([*BACKOUT, "watch", "plan.yaml", "--for", "10m"])
    executor = spawn(
        ["unshare", "--uts", "sh", "-c", f"hostname {OTHER_HOST} && exec {command}"], url, folder
    )
    wait_for("the watch", lambda: has(url, service, "watch_started"))
    time.sleep(random.uniform(0.0, 1.0))  # anywhere in the heartbeat's second
    killed_at = time.time()
    os.kill(executor.pid, signal.SIGKILL)
    executor.wait()
    took = resumed_after(url, service, killed_at)
    # the worker watches on: end the watch with a backout so the worker is free again
    subprocess.run(
        [*BACKOUT, "trigger", service, "--reason", "bench"],
        env={**os.environ, "BACKOUT_DATABASE_URL": url},
        capture_output=True,
        check=True,
    )
    wait_for("the run's end", lambda: has(url, service, "run_finished"))
    return took


def here(url: str, folder: Path, n: int) -> float:
    """Killed inside a step on this host: the owner is known dead at once."""
    service = f"here-{n}"
    (folder / "plan.yaml").write_text(STEPPED.format(service=service))
    (folder / "inside").unlink(missing_ok=True)
    executor = spawn([*BACKOUT, "run", "plan.yaml"], url, folder)
    wait_for("the slow step", lambda: (folder / "inside").exists())
    time.sleep(random.uniform(0.0, 1.0))
    killed_at = time.time()
    os.kill(executor.pid, signal.SIGKILL)
    executor.wait()
    took = resumed_after(url, service, killed_at)
    wait_for("the run's end", lambda: has(url, service, "run_finished"))
    return took


def measure(url: str, rounds: int, case: Callable[[str, Path, int], float]) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    subprocess.run(  # create and migrate the store before the worker and executors start
        [*BACKOUT, "runs"], env={**os.environ, "BACKOUT_DATABASE_URL": url}, capture_output=True
    )
    worker = spawn([*BACKOUT, "worker"], url, folder)
    try:
        return [case(url, folder, n) for n in range(rounds)]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        shutil.rmtree(folder, ignore_errors=True)


def report(name: str, seconds: list[float]) -> None:
    print(
        f"{name:<28} n={len(seconds):<3} median {statistics.median(seconds):5.2f} s   "
        f"max {max(seconds):5.2f} s   min {min(seconds):5.2f} s",
        flush=True,
    )


def can_unshare() -> bool:
    probe = subprocess.run(
        ["unshare", "--uts", "sh", "-c", f"hostname {OTHER_HOST}"], capture_output=True
    )
    return probe.returncode == 0


def run_store(name: str, url: str, rounds: int, other_host: bool) -> None:
    if other_host:
        report(f"{name}, another host", measure(url, rounds, elsewhere))
    report(f"{name}, this host", measure(url, rounds, here))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="kills per case per store")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    other_host = can_unshare()
    if not other_host:
        print(
            "`unshare --uts` is not allowed here (run as root): the another-host case is left out"
        )
    print("SIGKILL of the executor -> run_resumed journalled by a `backout worker`")
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-takeover-db-") as tmp:
            run_store("SQLite", f"sqlite:///{tmp}/backout.db", args.rounds, other_host)
    if args.store in ("postgres", "both"):
        with throwaway_database("bench_takeover") as url:
            run_store("PostgreSQL", url, args.rounds, other_host)


if __name__ == "__main__":
    main()
