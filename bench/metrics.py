"""`backout metrics` over a large store: N runs (default 100,000) written straight into a
fresh SQLite file and a fresh PostgreSQL database, then the figures computed over all of
them, as `backout metrics --since all --json` does (read, computed, written as JSON).

    .venv/bin/python bench/metrics.py [--runs 100000] [--repeat 3] [--only sqlite|postgres]

The runs are spread over the last 30 days, with ids like the engine's (12 random hex
digits, so a run's id says nothing of its age) and journals shaped like the engine's
(run_created, run_started, the steps' started/finished pairs, checkpoints, triggers,
backout_started, run_finished: about 11 events a run) and each run's plan document as big
as the demo plan's: 70% promoted deploys, 8% deploys that back out (a quarter of them with
a second trigger), 1% whose backout fails, 10% healthy watches, 3% plain backouts, 5%
rehearsals, 3% still running. Prints the time of the figures (median of --repeat, after
one warm-up), of the Prometheus exposition, and of the baseline: reading each run's
journal one query at a time (what a per-run report does), measured on 1,000 runs and
scaled to N.

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped (bench/pgdb.py).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from backout.commands import Caller
from backout.commands.metrics import metrics
from backout.metrics import Window, exposition
from backout.plans import load_plan
from backout.store import repo
from backout.store.db import Store
from backout.store.models import EventRow, RehearsalRow, RunRow
from pgdb import throwaway_database

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
BATCH = 5000
SERVICES = [f"svc{n:02d}" for n in range(20)]


def shapes(rng: random.Random) -> str:
    roll = rng.random()
    for share, shape in (
        (0.70, "promoted"),
        (0.78, "backed_out"),
        (0.79, "backout_failed"),
        (0.89, "healthy"),
        (0.92, "manual"),
        (0.97, "rehearsal"),
    ):
        if roll < share:
            return shape
    return "running"


def journal(shape: str, rng: random.Random) -> tuple[str, list[tuple[str, float, dict[str, Any]]]]:
    """(mode, events) of one run, seconds after its creation."""
    steps = [
        ("step_started", 1.0, {}),
        ("step_finished", 2.0, {"outcome": "succeeded", "summary": "exit code 0"}),
    ]
    start = [("run_created", 0.0, {}), ("run_started", 0.5, {}), *steps]
    hold = [("checkpoint_started", 3.0, {"stage": 0}), ("checkpoint_passed", 60.0, {"stage": 0})]
    detect = rng.uniform(20, 600)
    restore = detect + rng.lognormvariate(5, 1)
    fired = [("trigger_fired", detect, {"trigger": "errors", "summary": "above 5"})]
    if rng.random() < 0.25:
        fired.append(("trigger_fired", detect + 1, {"trigger": "latency", "summary": "slow"}))
    backout = [fired[0], ("backout_started", detect, {"trigger": "errors"}), *fired[1:]]
    undo = [
        ("step_started", detect + 2, {}),
        ("step_finished", restore - 1, {"outcome": "succeeded"}),
    ]
    if shape == "promoted":
        done = {"outcome": "succeeded", "result": "promoted"}
        return "deploy", [*start, *hold, ("promoted", 61.0, {}), ("run_finished", 61.0, done)]
    if shape in ("backed_out", "backout_failed"):
        ok = shape == "backed_out"
        done = {
            "outcome": "succeeded" if ok else "failed",
            "result": "backed_out" if ok else "failed",
        }
        return "deploy", [*start, *backout, *undo, ("run_finished", restore, done)]
    if shape == "healthy":
        done = {"outcome": "succeeded", "result": "healthy"}
        return "watch", [*start[:2], ("watch_started", 1.0, {}), ("run_finished", 300.0, done)]
    if shape == "manual":
        return "backout", [*start, ("run_finished", 40.0, {"outcome": "succeeded"})]
    if shape == "rehearsal":
        done = {"outcome": "succeeded", "result": "rehearsed"}
        return "rehearsal", [*start, *backout, *undo, ("run_finished", restore, done)]
    return "deploy", [*start, *hold[:1]]


def rows(
    n: int, plan_doc: dict[str, Any], now: float
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    rng = random.Random(7)
    ids = random.Random(11)
    for i in range(n):
        created = now - 30 * DAY + (30 * DAY - 3600) * i / n
        mode, events = journal(shapes(rng), rng)
        run_id = f"{ids.getrandbits(48):012x}"  # as the engine's uuid4().hex[:12]
        finished = [e for e in events if e[0] == "run_finished"]
        service = SERVICES[i % len(SERVICES)]
        doc = {"plan": {**plan_doc, "plan": service, "service": service}, "base_dir": "/srv"}
        doc.update({"mode": mode} if mode != "backout" else {})
        doc["environment"] = "production" if i % 3 else "staging"
        run = {
            "id": run_id,
            "plan": service,
            "service": f"{service}@{doc['environment']}",
            "plan_file": "plan.yaml",
            "plan_version": "v1",
            "plan_doc": doc,
            "mode": mode,
            "status": finished[0][2]["outcome"] if finished else "running",
            "actor": "bench",
            "snapshot_id": None,
            "created_at": created,
            "finished_at": created + finished[0][1] if finished else None,
            "message": "",
            "change_id": None,
        }
        journal_rows = [
            {
                "run_id": run_id,
                "seq": seq,
                "at": created + at,
                "kind": kind,
                "step": None,
                "attempt": None,
                "data": data,
            }
            for seq, (kind, at, data) in enumerate(events, start=1)
        ]
        yield run, journal_rows


def seed(store: Store, n: int, now: float) -> None:
    plan_doc = load_plan(ROOT / "examples" / "demo.yaml").plan.model_dump(mode="json")
    runs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    drills: list[dict[str, Any]] = []
    for run, journal_rows in rows(n, plan_doc, now):
        runs.append(run)
        events.extend(journal_rows)
        if run["plan_doc"].get("mode") == "rehearsal" and run["finished_at"]:
            drills.append(
                {
                    "plan": run["plan"],
                    "plan_version": "v1",
                    "run_id": run["id"],
                    "outcome": "succeeded",
                    "duration_s": 30.0,
                    "at": run["finished_at"],
                    "service": run["service"],
                    "environment": run["plan_doc"]["environment"],
                    "actor": "bench",
                    "message": "",
                    "phases": {},
                    "faults": [],
                }
            )
        if len(runs) >= BATCH:
            _flush(store, runs, events, drills)
    _flush(store, runs, events, drills)


def _flush(store: Store, runs: list[Any], events: list[Any], drills: list[Any]) -> None:
    with store.session() as session:
        if runs:
            session.execute(insert(RunRow), runs)
        if events:
            session.execute(insert(EventRow), events)
        if drills:
            session.execute(insert(RehearsalRow), drills)
    runs.clear()
    events.clear()
    drills.clear()


def timed(call: Any, repeat: int) -> float:
    call()  # warm-up: connections, the page cache, the planner's statistics
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def per_run_baseline(store: Store, sample: int) -> float:
    """Seconds to read ``sample`` runs' journals one query each (scaled by the caller)."""
    with store.session(read_only=True) as session:
        ids = [r.id for r in repo.list_runs(session, limit=sample)]
        started = time.perf_counter()
        for run_id in ids:
            repo.load_events(session, run_id)
        return time.perf_counter() - started


def measure(url: str, n: int, repeat: int) -> None:
    store = Store(url)
    try:
        now = time.time()
        started = time.perf_counter()
        seed(store, n, now)
        seeded = time.perf_counter() - started
        if not store.is_sqlite:
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        me = Caller(store, "bench")
        window = Window(None, now + 1)  # --since all
        report = metrics(me, window)
        figures_s = timed(lambda: json.dumps(metrics(me, window).to_json()), repeat)
        expo_s = timed(lambda: exposition(metrics(me, window).data), repeat)
        baseline_s = per_run_baseline(store, 1000) * n / 1000
        f = report.figures
        kind = "SQLite" if store.is_sqlite else "PostgreSQL"
        print(f"\n{kind}: {n} runs seeded in {seeded:.1f}s")
        print(f"  figures (metrics --since all --json):  {figures_s:.3f}s (median of {repeat})")
        print(f"  figures + Prometheus exposition:       {expo_s:.3f}s")
        print(f"  baseline, one journal query per run:   {baseline_s:.1f}s (from 1,000 runs)")
        print(f"  ratio baseline / figures:              {baseline_s / figures_s:.0f}x")
        s = f.stability
        print(
            f"  deployments {s.deployments}, failed {s.failed_deployments}, "
            f"CFR {s.change_failure_rate:.4f} ({f.dora['change_failure_rate']}), "
            f"recovery median {s.recovery_deploy.median_s}s p90 {s.recovery_deploy.p90_s}s "
            f"({f.dora['recovery_time']}), unplanned {f.unplanned_backouts}, "
            f"rehearsals {f.rehearsals.total}, in progress {f.in_progress}, "
            f"frequency {f.dora['deployment_frequency']}"
        )
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.only != "postgres":
        with tempfile.TemporaryDirectory(prefix="backout-bench-") as folder:
            measure(f"sqlite:///{folder}/backout.db", args.runs, args.repeat)
    if args.only != "sqlite":
        with throwaway_database("backout_bench") as url:
            measure(url, args.runs, args.repeat)


if __name__ == "__main__":
    main()
