"""`backout server` under load: the runs list over a large store, live events, and an
Alertmanager webhook through the API against the same through a watch's own listener.

    .venv/bin/python bench/server.py [--runs 100000] [--requests 100] [--events 200]
        [--alerts 30] [--store sqlite|postgres|both]

For each store (a fresh SQLite file, a fresh PostgreSQL database), RUNS runs are seeded
straight into it (bench/metrics.py's runs: 12-hex ids, about 11 journal events each, over
30 days, 20 services in two environments), then ``backout server`` is started as its own
process on a free loopback port, with an operator token:

1. **Runs list**: ``GET /api/v1/runs`` (50 a page), REQUESTS times each: the first page;
   deep pages by cursor (the cursor of the run at 10%, 50%, 90% and 99% of the store);
   with a filter (one service, one status, one mode), first and deep. p50/p95/max.
2. **Live events**: a writer in this process (as an executor is: another process than the
   server) appends EVENTS journal events to a running run, 20 to 80 ms apart, each as the
   engine does (the event and the run's projection in one transaction, a journal notice).
   Two clients follow at once: ``/api/v1/runs/{id}/events`` and ``/api/v1/events``. The
   latency is the moment the client read the event's message minus the moment the writer's
   commit returned. p50/p99/max.
3. **Alert to action**: ALERTS times, alternating: a ``backout watch PLAN --listen`` process
   gets a webhook on its own listener (bench/alert_latency.py), and a ``backout watch PLAN``
   process (no listener) gets it through the server's ``/api/v1/alerts/alertmanager``. From
   the moment just before the POST to three marks: the journal's ``backout_started`` (the
   trigger fired, the backout began), the first backout step's ``step_started``, and the
   moment the step's program ran (``date +%s.%N``, as it printed it). p50/p99/max.

Prints one table per part, stores side by side; no asserts. Needs PostgreSQL at
BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test); a database
of its own is created and dropped (bench/pgdb.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

import alert_latency
from backout.commands import Caller
from backout.commands.tokens import create_token
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.plans import load_plan
from backout.server.pages import encode_cursor
from backout.store import notices, repo
from backout.store.db import Store
from backout.store.models import EventRow, RunRow
from metrics import ROOT, seed
from pgdb import throwaway_database

BACKOUT = [sys.executable, "-m", "backout"]
ALERTS_PATH = "/api/v1/alerts/alertmanager"
SERVING = re.compile(r"serving the API from .* on (http://[0-9.]+:[0-9]+) ")
FILTERS = {
    "service": "service=svc03%40production",
    "status": "status=failed",
    "mode": "mode=watch",
}
DEPTHS = (0.10, 0.50, 0.90, 0.99)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Figures:
    """Milliseconds by row name, for one store."""

    rows: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: list[float]) -> None:
        self.rows[name] = [s * 1000 for s in seconds]


# --- the server, as its own process ---------------------------------------------------------
@contextmanager
def server(url: str, folder: Path) -> Iterator[str]:
    log = folder / "server.log"
    env = {**os.environ, "BACKOUT_DATABASE_URL": url, "BACKOUT_ACTOR": "server"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*BACKOUT, "server", "--listen", "127.0.0.1:0"], env=env, stderr=out, cwd=folder
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := SERVING.search(log.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(60)


# --- 1. the runs list -----------------------------------------------------------------------
def cursor_at(store: Store, depth: float, n: int) -> str:
    """The cursor whose page starts after the run at ``depth`` of the store, newest first."""
    query = (
        select(RunRow.created_at, RunRow.id)
        .order_by(RunRow.created_at.desc(), RunRow.id.desc())
        .offset(int(depth * (n - 1)))
        .limit(1)
    )
    with store.session(read_only=True) as session:
        created_at, run_id = session.execute(query).one()
    return encode_cursor(created_at, run_id)


def timed_gets(client: httpx.Client, url: str, requests: int) -> list[float]:
    client.get(url).raise_for_status()  # warm-up
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return times


def runs_list(store: Store, api: str, token: str, n: int, requests: int, out: Figures) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=60) as client:
        first = f"{api}/api/v1/runs?limit=50"
        out.add("first page", timed_gets(client, first, requests))
        for depth in DEPTHS:
            page = f"{first}&cursor={cursor_at(store, depth, n)}"
            out.add(f"page at {depth:.0%}", timed_gets(client, page, requests))
        deep = cursor_at(store, 0.90, n)
        for name, query in FILTERS.items():
            out.add(f"{name} filter", timed_gets(client, f"{first}&{query}", requests))
            page = f"{first}&{query}&cursor={deep}"
            out.add(f"{name} filter at 90%", timed_gets(client, page, requests))


# --- 2. live events -------------------------------------------------------------------------
def a_running_run(store: Store) -> str:
    run_id = "benchsse0001"
    now = time.time()
    demo = load_plan(ROOT / "examples" / "demo.yaml").plan.model_dump(mode="json")
    plan = {**demo, "plan": "sse", "service": "sse"}
    with store.session() as session:
        session.add(
            RunRow(
                id=run_id,
                plan="sse",
                service="sse",
                plan_file="plan.yaml",
                plan_version="v1",
                plan_doc={"plan": plan, "base_dir": "/tmp", "mode": "watch"},
                mode="watch",
                status="running",
                actor="bench",
                created_at=now,
                message="",
            )
        )
        session.flush()
        # no watch_started: part 3 takes a run that journalled one for its new watch
        for seq, kind in enumerate(("run_created", "run_started"), start=1):
            session.add(EventRow(run_id=run_id, seq=seq, at=now, kind=kind, data={}))
    return run_id


class Follower(threading.Thread):
    """Reads an event stream; the moment each bench event's message arrived, by its seq."""

    def __init__(self, url: str, token: str, run_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.run_id = url, token, run_id
        self.received: dict[int, float] = {}
        self.open = threading.Event()
        self.stop = False

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with (
            httpx.Client(timeout=httpx.Timeout(60, read=None)) as client,
            client.stream("GET", self.url, headers=headers) as response,
        ):
            response.raise_for_status()
            self.open.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("run_id", self.run_id) == self.run_id:
                        self.received[int(event["seq"])] = time.time()
                if self.stop:
                    return


def live_events(store: Store, api: str, token: str, events: int, out: Figures) -> None:
    run_id = a_running_run(store)
    followers = {
        "run stream": Follower(f"{api}/api/v1/runs/{run_id}/events", token, run_id),
        "global stream": Follower(f"{api}/api/v1/events", token, run_id),
    }
    for follower in followers.values():
        follower.start()
        follower.open.wait(30)
    time.sleep(1.0)  # the streams' first look at the table is done
    committed: dict[int, float] = {}
    rng = random.Random(3)
    for seq in range(3, 3 + events):
        event = Event(run_id, seq, time.time(), EventKind.WARNING, data={"message": f"n{seq}"})
        with store.session() as session:
            repo.append_event(session, event, RunStatus.RUNNING, "", None)
            notices.notify(session, notices.JOURNAL, run_id)
        committed[seq] = time.time()
        time.sleep(rng.uniform(0.02, 0.08))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        len(f.received) < len(committed) for f in followers.values()
    ):
        time.sleep(0.1)
    for name, follower in followers.items():
        follower.stop = True
        got = [follower.received[s] - at for s, at in committed.items() if s in follower.received]
        out.add(name, got)
        if len(got) < len(committed):
            print(f"  {name}: {len(committed) - len(got)} of {len(committed)} never arrived")


# --- 3. alert to action ---------------------------------------------------------------------
def via_server(
    url: str, folder: Path, n: int, known: set[str], api: str, token: str, answered: list[float]
) -> dict[str, float]:
    """One `backout watch` without a listener; the webhook goes to the server instead."""
    env = {**os.environ, "BACKOUT_DATABASE_URL": url}
    proc = subprocess.Popen(
        [*BACKOUT, "watch", "plan.yaml", "--for", "10m"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = int(api.rsplit(":", 1)[1])
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while run_id is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the watch did not start: {proc.stderr.read() if proc.stderr else ''}"
                )
            run_id = alert_latency.watching(url, known)
            time.sleep(0.01)
        known.add(run_id)
        body = alert_latency.webhook(time.time(), n)
        head = (
            f"POST {ALERTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        request = head.encode() + body
        sent = time.time()
        answer = alert_latency.send(port, request)
        answered.append(time.time() - sent)
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the server answered {answer[:300]!r}")
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return alert_latency.marks(url, run_id, sent)


def alert_to_action(url: str, api: str, token: str, alerts: int, out: Figures) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-server-alert-") as tmp:
        folder = Path(tmp)
        (folder / "plan.yaml").write_text(alert_latency.PLAN)
        known: set[str] = set()
        listener: list[dict[str, float]] = []
        endpoint: list[dict[str, float]] = []
        answered: list[float] = []
        for n in range(alerts):
            listener.append(alert_latency.one_marks(url, folder, 2 * n, known))
            endpoint.append(via_server(url, folder, 2 * n + 1, known, api, token, answered))
        for mark in (alert_latency.BACKOUT_STARTED, alert_latency.STEP, alert_latency.PROGRAM):
            out.add(f"listen -> {mark}", [m[mark] for m in listener])
            out.add(f"server -> {mark}", [m[mark] for m in endpoint])
        out.add("(server's answer)", answered)


# --- one store ------------------------------------------------------------------------------
@contextmanager
def serving(url: str, seeded: int) -> Iterator[tuple[Store, str, str]]:
    """The store at ``url`` with ``seeded`` runs, an operator token, the server's URL."""
    store = Store(url)
    store.open()
    try:
        if seeded:
            started = time.perf_counter()
            seed(store, seeded, time.time())
            if not store.is_sqlite:
                with store.engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()
            kind = "SQLite" if store.is_sqlite else "PostgreSQL"
            took = time.perf_counter() - started
            print(f"{kind}: {seeded} runs seeded in {took:.1f}s", flush=True)
        token = create_token(Caller(store, "bench"), "operator", "bench", None).secret
        with (
            tempfile.TemporaryDirectory(prefix="bench-server-") as tmp,
            server(url, Path(tmp)) as api,
        ):
            yield store, token, api
    finally:
        store.dispose()


def measure(url: str, fresh: str, args: argparse.Namespace) -> dict[str, Figures]:
    """Parts 1 and 2 on the store at ``url`` (seeded), part 3 on the empty one at ``fresh``
    (its watches are found by scanning the journal, as bench/alert_latency.py does)."""
    figures = {part: Figures() for part in ("runs", "events", "alerts")}
    with serving(url, args.runs) as (store, token, api):
        runs_list(store, api, token, args.runs, args.requests, figures["runs"])
        live_events(store, api, token, args.events, figures["events"])
    with serving(fresh, 0) as (_, token, api):
        alert_to_action(fresh, api, token, args.alerts, figures["alerts"])
    return figures


# --- the tables -----------------------------------------------------------------------------
def table(title: str, stores: dict[str, Figures], quantiles: tuple[float, ...]) -> None:
    names = [f"p{round(q * 100)}" for q in quantiles] + ["max"]
    print(f"\n{title} (ms)")
    head = f"{'':<30}" + "".join(f"{store:>{10 * len(names)}}" for store in stores)
    print(head)
    print(f"{'':<30}" + "".join(f"{n:>10}" for _ in stores for n in names))
    rows = next(iter(stores.values())).rows
    for row in rows:
        cells = ""
        for figures in stores.values():
            ms = figures.rows.get(row, [])
            values = [percentile(ms, q) for q in quantiles] + [max(ms)] if ms else []
            cells += "".join(f"{v:>10.1f}" for v in values) or f"{'-':>{10 * len(names)}}"
        print(f"{row:<30}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs seeded in each store")
    parser.add_argument("--requests", type=int, default=100, help="GETs of each runs-list case")
    parser.add_argument("--events", type=int, default=200, help="journal events followed live")
    parser.add_argument("--alerts", type=int, default=30, help="alerts per path and store")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    found: dict[str, dict[str, Figures]] = {}
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-server-db-") as tmp:
            urls = (f"sqlite:///{tmp}/backout.db", f"sqlite:///{tmp}/alerts.db")
            found["SQLite"] = measure(*urls, args)
    if args.store in ("postgres", "both"):
        with (
            throwaway_database("bench_server") as url,
            throwaway_database("bench_server_alerts") as fresh,
        ):
            found["PostgreSQL"] = measure(url, fresh, args)
    by_part = {
        part: {store: f[part] for store, f in found.items()}
        for part in ("runs", "events", "alerts")
    }
    table(
        f"GET /api/v1/runs, 50 a page, {args.runs} runs, {args.requests} GETs each",
        by_part["runs"],
        (0.5, 0.95),
    )
    table(f"journal write -> SSE message, {args.events} events", by_part["events"], (0.5, 0.99))
    table(
        f"Alertmanager POST -> first backout step started, {args.alerts} each",
        by_part["alerts"],
        (0.5, 0.99),
    )
    for store, figures in found.items():
        mean = {row: statistics.fmean(ms) for row, ms in figures["alerts"].rows.items() if ms}
        print(f"{store} alert means: " + ", ".join(f"{r} {v:.1f} ms" for r, v in mean.items()))


if __name__ == "__main__":
    main()
