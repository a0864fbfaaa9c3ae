"""Alertmanager POST → first backout step started: how long does an alert take to act?

RUNS times, on SQLite and then on PostgreSQL: a `backout watch PLAN --listen` process watches
a release (one run each); once it journalled ``watch_started``, one Alertmanager webhook
(the real payload format, with the listener's bearer token) is POSTed to it. The latency is
the journal's ``step_started`` time of the first backout step minus the moment just before
the POST was sent (one clock: everything runs on this machine). p50/p99/max are printed per
store, and again to the moment the step's program ran (``-> program ran``: the step runs
``date +%s.%N``, whose output the journal keeps). ``step_started`` is timed as its journal
write begins; the program may run only once that write is durable, so the second figure is
the one an operator feels.

    .venv/bin/python bench/alert_latency.py [--runs 100] [--store sqlite|postgres|both]
        [--baseline SRC]

``--baseline SRC`` (a ``src`` folder of another checkout, e.g. ``git archive HEAD src | tar
-x -C /tmp/before``) runs that backout too, alternating with this one alert by alert, each
on a store of its own: a busy machine slows both alike.

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from pgdb import throwaway_database

BACKOUT = [sys.executable, "-m", "backout"]
TOKEN = "bench-alert-latency-token-7d3e"
PLAN = """\
plan: latency
service: latency
triggers:
  - name: paged
    alertmanager: {match: {service: latency}}
steps:
  - name: back out
    run: ["date", "+%s.%N"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook(starts: float, n: int) -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "latency"},
        "annotations": {"summary": "5xx above 5%"},
        "startsAt": dt.datetime.fromtimestamp(starts, tz=dt.UTC).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{n:016x}",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "status": "firing",
        "receiver": "backout",
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def post_request(body: bytes) -> bytes:
    """The whole request, made before the clock starts (as Alertmanager has it ready)."""
    head = (
        "POST /alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def send(port: int, request: bytes) -> bytes:
    """POST over a plain socket: no client library set-up inside the measured time."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def journal(url: str, run_id: str | None = None) -> list[tuple[str, str, float, int | None]]:
    """(run id, kind, at, step) rows, read with the database's own client (not backout)."""
    query = "SELECT run_id, kind, at, step FROM journal"
    args: tuple[str, ...] = ()
    if run_id:
        query += " WHERE run_id = %s" if url.startswith("postgresql") else " WHERE run_id = ?"
        args = (run_id,)
    query += " ORDER BY id"
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            return list(conn.execute(query, args).fetchall())  # type: ignore[arg-type]
    import sqlite3

    path = url.removeprefix("sqlite:///")
    if not Path(path).exists():
        return []
    with sqlite3.connect(path, timeout=30) as conn:
        return list(conn.execute(query, args).fetchall())


def watching(url: str, known: set[str]) -> str | None:
    """The new run's id, once it journalled watch_started."""
    try:
        rows = journal(url)
    except (psycopg.Error, Exception):  # the store is being created by the watch
        return None
    for run_id, kind, _, _ in rows:
        if kind == "watch_started" and run_id not in known:
            return str(run_id)
    return None


def one(
    url: str,
    folder: Path,
    n: int,
    known: set[str],
    src: str | None = None,
    program: list[float] | None = None,
) -> float:
    """One watch, one alert: seconds from just before the POST to the step's start (and,
    appended to ``program``, to the moment its program ran)."""
    found = one_marks(url, folder, n, known, src)
    if program is not None:
        program.append(found[PROGRAM])
    return found[STEP]


BACKOUT_STARTED, STEP, PROGRAM = "backout started", "first step started", "program ran"


def marks(url: str, run_id: str, sent: float) -> dict[str, float]:
    """Seconds from ``sent`` (just before the POST) to the run's ``backout_started``, its
    first ``step_started`` and the moment the step's program ran."""
    events = journal(url, run_id)
    backout = [at for _, kind, at, _ in events if kind == "backout_started"]
    started = [at for _, kind, at, _ in events if kind == "step_started"]
    if not backout or not started:
        raise SystemExit(f"run {run_id} never started its backout step")
    return {
        BACKOUT_STARTED: float(backout[0]) - sent,
        STEP: float(started[0]) - sent,
        PROGRAM: program_ran(url, run_id) - sent,
    }


def one_marks(
    url: str, folder: Path, n: int, known: set[str], src: str | None = None
) -> dict[str, float]:
    """One watch with its own listener, one alert: :func:`marks`."""
    port = free_port()
    env = {**os.environ, "BACKOUT_DATABASE_URL": url, "BACKOUT_LISTEN_TOKEN": TOKEN}
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.Popen(
        [*BACKOUT, "watch", "plan.yaml", "--for", "10m", "--listen", f"127.0.0.1:{port}"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while run_id is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the watch did not start: {proc.stderr.read() if proc.stderr else ''}"
                )
            run_id = watching(url, known)
            time.sleep(0.01)
        known.add(run_id)
        request = post_request(webhook(time.time(), n))
        sent = time.time()
        answer = send(port, request)
        if not answer.startswith(b"HTTP/1.1 200") and not answer.startswith(b"HTTP/1.0 200"):
            raise SystemExit(f"the listener answered {answer[:200]!r}")
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return marks(url, run_id, sent)


def program_ran(url: str, run_id: str) -> float:
    """When the backout step's program ran: the ``date +%s.%N`` it printed."""
    query = "SELECT data FROM journal WHERE kind = 'step_finished' AND run_id = "
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            row = conn.execute(query + "%s", (run_id,)).fetchone()
    else:
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as conn:
            row = conn.execute(query + "?", (run_id,)).fetchone()
    if row is None:
        raise SystemExit(f"run {run_id} never finished its backout step")
    data = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return float(data["output"].strip())


def measure(
    urls: list[str], runs: int, srcs: list[str | None]
) -> tuple[list[list[float]], list[list[float]]]:
    """Latencies of each (store, source) pair, alert by alert in turn: to the step's start,
    and to the moment its program ran."""
    with tempfile.TemporaryDirectory(prefix="bench-alert-") as tmp:
        folder = Path(tmp)
        (folder / "plan.yaml").write_text(PLAN)
        known: set[str] = set()
        found: list[list[float]] = [[] for _ in urls]
        programs: list[list[float]] = [[] for _ in urls]
        for n in range(runs):
            for i, (url, src) in enumerate(zip(urls, srcs, strict=True)):
                found[i].append(one(url, folder, n, known, src, programs[i]))
        return found, programs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:<10} n={len(ms):<4} p50 {percentile(ms, 0.5):6.1f} ms   "
        f"p99 {percentile(ms, 0.99):6.1f} ms   max {max(ms):6.1f} ms   "
        f"mean {statistics.fmean(ms):6.1f} ms",
        flush=True,
    )


def compare(name: str, urls: list[str], runs: int, baseline: str | None) -> None:
    srcs: list[str | None] = [None, baseline] if baseline else [None]
    found, programs = measure(urls, runs, srcs)
    report(name, found[0])
    if baseline:
        report(f"{name} (baseline)", found[1])
    report(f"{name} -> program ran", programs[0])
    if baseline:
        report(f"{name} -> program ran (baseline)", programs[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="alerts (one watch each) per store")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--baseline", help="the src folder of a backout to compare with")
    args = parser.parse_args()
    print(
        f"Alertmanager POST -> first backout step started ({args.runs} watches per store); "
        "-> program ran: to the moment its program ran"
    )
    stores = 2 if args.baseline else 1
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-alert-db-") as tmp:
            urls = [f"sqlite:///{tmp}/backout-{i}.db" for i in range(stores)]
            compare("SQLite", urls, args.runs, args.baseline)
    if args.store in ("postgres", "both"):
        with (
            throwaway_database("bench_alerts") as first,
            throwaway_database("bench_alerts") as second,
        ):
            compare("PostgreSQL", [first, second][:stores], args.runs, args.baseline)


if __name__ == "__main__":
    main()
