"""Rehearse a backout N times: what each phase of a drill costs, p50 and p95, against the
plan's rto, on SQLite and on PostgreSQL side by side.

The plan breaks a service the way a bad release does (its ``current`` symlink moves to a
release whose VERSION is bad), a ``command`` signal reads that every 200 ms, a threshold
trigger detects it, the backout switches the symlink back with its first attempt failing
(the ``fail_first`` fault: the retry is part of what is timed), and a verify check reads
VERSION again. Each drill is a separate journalled run; ``backout rehearse --times N``
reports the percentiles.

    .venv/bin/python bench/rehearse.py [--times 20]

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

PG_ADMIN = os.environ.get("BACKOUT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RTO_S = 30.0
PLAN = f"""plan: shop
risk: high
rto: {RTO_S:g}s
roles: {{lead: oncall@example.com}}
steps:
  - name: switch back
    symlink: {{link: current, target: releases/good}}
    timeout: 10s
    retries: 1
    retry_delay: 100ms
    idempotent: true
verify:
  - name: good release live
    command: {{argv: [cat, current/VERSION], contains: good}}
telemetry:
  bad:
    command: {{argv: [sh, -c, 'if grep -q bad current/VERSION; then echo 1; else echo 0; fi']}}
    interval: 200ms
triggers:
  - name: bad release
    signal: bad
    threshold: {{above: 0.5}}
    on_no_data: ignore
rehearsal:
  break:
    - name: ship the bad build
      symlink: {{link: current, target: releases/bad}}
      undo: {{symlink: {{link: current, target: releases/good}}}}
  detect_within: 10s
  faults:
    - fail_first: {{step: switch back}}
"""


def folder() -> Path:
    root = Path(tempfile.mkdtemp(prefix="backout-bench-rehearse-"))
    for name in ("good", "bad"):
        (root / "releases" / name).mkdir(parents=True)
        (root / "releases" / name / "VERSION").write_text(name + "\n")
    (root / "current").symlink_to("releases/good")
    (root / "plan.yaml").write_text(PLAN)
    return root


def drills(url: str, times: int) -> dict[str, dict[str, float]]:
    root = folder()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "backout",
            "--db",
            url,
            "rehearse",
            "plan.yaml",
            "--times",
            str(times),
            "--json",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"rehearse failed ({result.returncode}): {result.stderr[-2000:]}")
    data = json.loads(result.stdout)
    assert all(d["passed"] for d in data["drills"]), "a drill failed"
    return data["percentiles"]  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--times", type=int, default=20)
    times = parser.parse_args().times
    name = f"backout_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        sqlite = f"sqlite:///{folder() / 'bench.db'}"
        results = {
            "SQLite": drills(sqlite, times),
            "PostgreSQL": drills(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", times),
        }
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    print(f"{times} drills per store; rto {RTO_S:g}s")
    print(
        f"{'phase':<8}" + "".join(f"{store + ' p50':>16}{store + ' p95':>16}" for store in results)
    )
    for phase in ("break_s", "detect_s", "backout_s", "verify_s", "total_s"):
        cells = ""
        for percentiles in results.values():
            p = percentiles[phase]
            cells += f"{p['p50']:>15.3f}s{p['p95']:>15.3f}s"
        print(f"{phase[:-2]:<8}{cells}")
    for store, percentiles in results.items():
        total = percentiles["total_s"]["p95"]
        ratio = total / RTO_S
        print(f"{store}: p95 total / rto = {ratio:.4f} (the rto is {1 / ratio:.0f}x the p95)")


if __name__ == "__main__":
    main()
