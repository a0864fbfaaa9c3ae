"""One process watching a fleet: `backout watch FOLDER` over N deployments, N = 100, 300 and
1,000, each with its own `/metrics` target (one local Prometheus-format target server
serving them all, in a process of its own: tests/fleet_targets.py). One target in a hundred
turns bad halfway through, so the fleet also backs out while it watches.

For each N it reports, measured from the moment all N runs watch (the watch's own
``backout_watch_deployments`` gauge, served by ``--metrics``) for ``--window`` seconds:

* evaluation lag (a reading due -> its detectors have it), p50 and p99 over the window's
  readings (from the watch's histogram), and over the whole watch (start-up included);
* the watch process's CPU (share of one core) and peak RSS;
* its PostgreSQL connections (pg_stat_activity, by the process's application_name).

    .venv/bin/python bench/watch_scale.py [--sizes 100,300,1000] [--interval 5]
        [--window 30] [--store postgres|sqlite]

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test)
for --store postgres; a database of its own is created and dropped for each N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pgdb import throwaway_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.fleet_targets import fleet_plan  # noqa: E402  (the same plans as the tests)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> dict[str, float]:
    """The watch's own metrics: the gauge, and the lag histogram summed over services."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0]
        key = name
        if name.endswith("_bucket"):
            key = name + "|" + name_labels.split('le="', 1)[1].split('"', 1)[0]
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def window_quantile(before: dict[str, float], after: dict[str, float], q: float) -> float | None:
    """A quantile of the readings between two scrapes, from the histogram's buckets (the
    upper edge of the bucket it falls in)."""
    prefix = "backout_watch_evaluation_lag_seconds_bucket|"
    edges = sorted(
        (float(k.split("|", 1)[1]), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith(prefix)
    )
    total = edges[-1][1] if edges else 0.0
    if total <= 0:
        return None
    for edge, count in edges:
        if count >= q * total:
            return edge
    return None


def connections(url: str | None, pid: int) -> int | None:
    if url is None:
        return None
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"backout:{pid}%",),
        ).fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def targets(bad: list[int]) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """The target server; its ``bad`` targets turn bad when it gets SIGUSR1."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet_targets", "--bad", ",".join(map(str, bad))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        yield port, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def wait_watching(port: int, n: int, process: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the watch ended early ({process.returncode})")
        with contextlib.suppress(OSError):
            if scrape(port).get("backout_watch_deployments", 0) >= n:
                return
        time.sleep(0.2)
    raise SystemExit(f"not all {n} deployments watched in time")


def one(n: int, interval: float, window: float, store_url: str, pg_url: str | None) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    hold = 3600.0  # longer than the start-up and the window: the bench stops it (SIGTERM)
    bad = list(range(50, n, 100))  # one in a hundred turns bad halfway through the window
    with targets(bad) as (target_port, server):
        plans = folder / "plans"
        plans.mkdir()
        for i in range(n):
            url = f"http://127.0.0.1:{target_port}/t/{i}/metrics"
            text = fleet_plan(i, url, interval=f"{interval:g}s")
            (plans / f"p{i:04d}.yaml").write_text(text)
        metrics_port = free_port()
        env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
        started = time.monotonic()
        command = ["watch", str(plans), "--for", f"{hold:.0f}s", "--json"]
        watch = subprocess.Popen(
            [sys.executable, "-m", "backout", *command, "--metrics", f"127.0.0.1:{metrics_port}"],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            wait_watching(metrics_port, n, watch, started + 600)
            startup = time.monotonic() - started
            cpu0, t0, m0 = cpu_seconds(watch.pid), time.monotonic(), scrape(metrics_port)
            time.sleep(window / 2)
            conns = connections(pg_url, watch.pid)
            server.send_signal(signal.SIGUSR1)  # one in a hundred turns bad now
            time.sleep(window / 2)
            cpu1, t1, m1 = cpu_seconds(watch.pid), time.monotonic(), scrape(metrics_port)
            rss = peak_rss_mib(watch.pid)
            os.killpg(watch.pid, signal.SIGTERM)  # a stop: every run journals it and ends
            out, _ = watch.communicate(timeout=300)
        finally:
            if watch.poll() is None:
                os.killpg(watch.pid, signal.SIGKILL)
                watch.wait()
    report = json.loads(out)
    return {
        "n": n,
        "startup_s": round(startup, 1),
        "cpu_share": round((cpu1 - cpu0) / (t1 - t0), 3),
        "rss_mib": round(rss),
        "connections": conns,
        "window_lag_p50_le_s": window_quantile(m0, m1, 0.5),
        "window_lag_p99_le_s": window_quantile(m0, m1, 0.99),
        "readings": int(
            m1.get("backout_watch_evaluation_lag_seconds_count", 0)
            - m0.get("backout_watch_evaluation_lag_seconds_count", 0)
        ),
        "whole_lag": report["lag"],
        "backed_out": sum(
            1 for r in report["runs"] if (r["run"] or {}).get("result") == "backed_out"
        ),
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--interval", type=float, default=5.0, help="scrape interval, seconds")
    parser.add_argument("--window", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()
    print(
        f"{'N':>5} {'start-up':>9} {'CPU':>6} {'RSS':>8} {'conns':>5} "
        f"{'lag p50':>9} {'lag p99':>9} {'readings':>8} {'whole p99':>9} {'backed out':>10}"
    )
    for n in (int(size) for size in args.sizes.split(",")):
        with contextlib.ExitStack() as stack:
            if args.store == "postgres":
                url = stack.enter_context(throwaway_database("bench_fleet"))
                store_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                pg_url: str | None = url
            else:
                folder = stack.enter_context(tempfile.TemporaryDirectory())
                store_url, pg_url = f"sqlite:///{folder}/backout.db", None
            row = one(n, args.interval, args.window, store_url, pg_url)
        p50, p99 = (_le(row["window_lag_p50_le_s"]), _le(row["window_lag_p99_le_s"]))
        conns = "-" if row["connections"] is None else row["connections"]
        whole = f"{row['whole_lag']['p99_s'] or 0:.3f}s"
        print(
            f"{n:>5} {row['startup_s']:>8}s {row['cpu_share'] * 100:>5.1f}% "
            f"{row['rss_mib']:>5} MiB {conns:>5} {p50:>9} {p99:>9} "
            f"{row['readings']:>8} {whole:>9} {row['backed_out']:>10}",
            flush=True,
        )


def _le(edge: float | None) -> str:
    return f"≤{edge:g}s" if edge is not None else "-"


if __name__ == "__main__":
    main()
