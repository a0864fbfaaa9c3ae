"""How long `backout report` takes for a run with a 1,000-event journal (goal: under 1 s),
on SQLite and on PostgreSQL, against a baseline measured in the same run: reading the
same journal and writing it out as JSON (what `backout journal --json` does).

    .venv/bin/python bench/report.py [--pg postgresql://postgres@127.0.0.1:5432/test]

The journal is written through the engine's own journal (so every transition rule
holds): a deploy-shaped run whose checkpoint journals 974 trigger verdicts, then a
backout of 8 steps and 2 verify checks. Each figure is the median of 7 drafts; the store
is opened once, as the CLI opens it once per command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from backout.engine.create import create_run
from backout.engine.journal import Journal
from backout.engine.runner import empty_view
from backout.kernel.events import EventKind
from backout.plans import load_plan
from backout.postmortem import draft
from backout.redact import Redactor
from backout.store import leases, repo
from backout.store.db import Store

EVENTS = 1_000
ROUNDS = 7
PLAN = """\
plan: bench-report
service: bench-report
rto: 1m
steps:
{steps}
verify:
  - name: healthy
    command: ['true']
  - name: config
    command: ['true']
"""


def write_plan(folder: Path) -> Path:
    steps = "".join(f"  - name: step {n}\n    run: ['true']\n" for n in range(1, 9))
    path = folder / "plan.yaml"
    path.write_text(PLAN.format(steps=textwrap.dedent(steps).rstrip()))
    return path


def journal_of(store: Store, plan: Path) -> str:
    """A run whose journal has exactly EVENTS events; its id."""
    loaded = load_plan(plan)
    row = create_run(store, loaded, "bench", leases.new_owner(), 30.0, None, {})
    journal = Journal.open(store, empty_view(row, loaded.plan), Redactor())
    journal.append(EventKind.RUN_STARTED, actor="bench")
    tail = 2 + 8 * 2 + 1 + 2 * 2 + 1  # backout_started, steps, verify, checks, finish
    for n in range(EVENTS - journal.view.last_seq - tail):
        value = 0.01 * (n % 50)
        journal.append(
            EventKind.TRIGGER_EVALUATED,
            trigger="errors above 0.3",
            verdict="pass" if value <= 0.3 else "marginal",
            statistic=value,
            threshold=0.3,
            summary=f"errors {value:.2f}",
            evidence={"value": value, "above": 0.3, "for_s": 3.0},
        )
    fired = {"trigger": "errors above 0.3", "trigger_kind": "threshold", "summary": "errors 0.5"}
    evidence = {"statistic": 0.5, "threshold": 0.3, "evidence": {"value": 0.5, "above": 0.3}}
    journal.append(EventKind.TRIGGER_FIRED, **fired, evidence=evidence)
    journal.append(EventKind.BACKOUT_STARTED, **fired, evidence=evidence)
    for step in range(8):
        journal.append(EventKind.STEP_STARTED, step=step, attempt=1)
        journal.append(EventKind.STEP_FINISHED, step=step, outcome="succeeded", summary="ok")
    journal.append(EventKind.VERIFY_STARTED)
    for check in range(2):
        journal.append(EventKind.CHECK_STARTED, step=check)
        journal.append(EventKind.CHECK_FINISHED, step=check, passed=True, reason="ok")
    journal.append(
        EventKind.RUN_FINISHED, outcome="succeeded", message="backed out", result="backed_out"
    )
    with store.session() as session:
        assert repo.count_events(session, row.id) == EVENTS
    return row.id


def median_s(work: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(label: str, url: str, folder: Path) -> None:
    store = Store(url)
    try:
        run_id = journal_of(store, write_plan(folder))

        def baseline() -> str:
            with store.session(read_only=True) as session:
                events = repo.load_events(session, run_id)
            return json.dumps([e.to_json() for e in events])

        base = median_s(baseline)
        figures = {
            fmt: median_s(lambda fmt=fmt: draft(store, run_id).render(fmt))
            for fmt in ("md", "html", "json")
        }
    finally:
        store.dispose()
    for fmt, seconds in figures.items():
        verdict = "ok" if seconds < 1.0 else "OVER the 1 s goal"
        print(
            f"{label:<10} {fmt:<4} {seconds * 1000:7.1f} ms  "
            f"({seconds / base:5.1f}x reading the journal as JSON, {base * 1000:.1f} ms)  {verdict}"
        )


@contextmanager
def postgres_schema(admin: str) -> Iterator[str]:
    """A schema of its own in ``admin``'s database, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield f"{admin}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"`backout report` of a {EVENTS}-event journal, median of {ROUNDS}:")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measure("sqlite", f"sqlite:///{folder / 'bench.db'}", folder)
        try:
            with postgres_schema(args.pg) as url:
                measure("postgresql", url, folder)
        except psycopg.OperationalError as exc:
            print(f"postgresql skipped: {args.pg} not reachable ({str(exc).strip()[:80]})")


if __name__ == "__main__":
    main()
