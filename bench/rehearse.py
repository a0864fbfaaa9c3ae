"""Rehearse the demo plan N times: what each phase of a drill costs, p50 and p95, against
the plan's rto, on SQLite and on PostgreSQL side by side.

The demo's service runs v1 under the demo's own traffic (about 80 requests a second); each
drill is `backout rehearse` of examples/demo.yaml: the break puts v2 live (30% of its
answers are 500s), the plan's sequential and threshold triggers read the service's real
/metrics until one fires, the backout points current back at v1, restarts the service,
waits for it and verifies it, and the steady state is checked again. Each drill is a
separate journalled run whose evidence is recorded; the percentiles are `backout
rehearse --times N`'s.

    .venv/bin/python bench/rehearse.py [--times 10]

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from backout import commands
from backout.demo.processes import OWNER_ENV, PORT_ENV, choose_port, restart, stop_all
from backout.demo.traffic import Traffic
from backout.demo.workdir import layout
from backout.drills import PHASES, percentiles
from backout.plans import load_plan
from backout.reports import RehearsalReport
from backout.settings import Settings

PG_ADMIN = os.environ.get("BACKOUT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def drills(url: str, times: int) -> tuple[list[RehearsalReport], float]:
    """``times`` drills of the demo plan against a live demo service, on the store ``url``."""
    root = Path(tempfile.mkdtemp(prefix="backout-bench-rehearse-")).resolve()
    port = choose_port()
    os.environ[PORT_ENV], os.environ[OWNER_ENV] = str(port), str(os.getpid())
    plan = layout(root)
    pids = {restart(root, port)}
    traffic = Traffic(f"http://127.0.0.1:{port}/")
    traffic.start()
    caller = commands.Caller.of(Settings(database_url=url, actor="bench"))
    try:
        commands.snapshot(caller, plan, telemetry_window=2.0)
        reports = []
        for _ in range(times):
            report = commands.rehearse(caller, plan)
            assert report.passed, report.message
            reports.append(report)
        rto = load_plan(plan).plan.rto or 0.0
        return reports, rto
    finally:
        traffic.stop()
        stop_all(root, pids)
        caller.store.dispose()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--times", type=int, default=10)
    times = parser.parse_args().times
    name = f"backout_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    store = Path(tempfile.mkdtemp(prefix="backout-bench-store-"))
    try:
        results = {
            "SQLite": drills(f"sqlite:///{store / 'bench.db'}", times),
            "PostgreSQL": drills(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", times),
        }
    finally:
        shutil.rmtree(store, ignore_errors=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    rto = next(iter(results.values()))[1]
    print(f"{times} drills of the demo plan per store; rto {rto:g}s")
    print(f"{'phase':<8}" + "".join(f"{s + ' p50':>16}{s + ' p95':>16}" for s in results))
    table = {store: percentiles(reports) for store, (reports, _) in results.items()}
    for phase in PHASES:
        cells = ""
        for values in table.values():
            cells += f"{values[phase]['p50'] or 0:>15.3f}s{values[phase]['p95'] or 0:>15.3f}s"
        print(f"{phase[:-2]:<8}{cells}")
    for store, values in table.items():
        ratio = (values["total_s"]["p95"] or 0.0) / rto
        print(f"{store}: p95 total / rto = {ratio:.4f} (the rto is {1 / ratio:.0f}x the p95)")


if __name__ == "__main__":
    main()
