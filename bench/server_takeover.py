"""Takeover between two servers: two `backout server --workers 1` on one PostgreSQL database,
a run started through `POST /api/v1/runs`; the server whose worker runs it is killed with
SIGKILL (its whole process group) in the middle of a step. How long until the other
server's worker has journalled ``run_resumed``? Then the run is let finish, the killed
server is started again, and the next round begins.

Both servers run on this host, so the surviving worker sees the owner's exit at once (a
pidfd) and need not wait for the lease to expire; across hosts the takeover waits for the
lease (5 s by default: bench/takeover.py measures that case).

    .venv/bin/python bench/server_takeover.py [--rounds 5]

Needs PostgreSQL at BACKOUT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
a database of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from pgdb import throwaway_database

BACKOUT = [sys.executable, "-m", "backout"]
SERVING = re.compile(r"serving the API from \S+ on (http://\S+) \(")
PLAN = """\
plan: slow
service: slow
steps:
  - name: slow
    run: [sh, -c, 'echo $$ > inside; while [ ! -e release ]; do sleep 0.05; done']
    timeout: 60s
    idempotent: true
  - name: done
    run: ["true"]
"""


def wait_for(what: str, probe: Callable[[], object], timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.01)
    return value


class Server:
    """`backout server --workers 1` in its own process group, on a free port."""

    def __init__(self, url: str, folder: Path, name: str) -> None:
        self.log = folder / f"{name}.log"
        with self.log.open("ab") as out:
            argv = [*BACKOUT, "--db", url, "server", "--listen", "127.0.0.1:0", "--workers", "1"]
            self.process = subprocess.Popen(
                [*argv, "--plans", str(folder / "plans")],
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )
        found = wait_for("the server", lambda: SERVING.findall(self.log.read_text()))
        assert isinstance(found, list)
        self.url = str(found[-1])

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)


def journal(url: str, run_id: str) -> list[tuple[str, float, dict[str, object]]]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT kind, at, data FROM journal WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
    return [(str(kind), float(at), dict(data)) for kind, at, data in found]


def first(url: str, run_id: str, kind: str) -> tuple[float, dict[str, object]] | None:
    return next(((at, data) for k, at, data in journal(url, run_id) if k == kind), None)


def operator_token(url: str) -> str:
    made = subprocess.run(
        [*BACKOUT, "--db", url, "token", "create", "--role", "operator", "--actor", "bench"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"bo_[A-Za-z0-9_-]{40}", made.stdout + made.stderr)
    assert found is not None, made.stdout
    return found.group(0)


def one_round(url: str, folder: Path, servers: dict[int, Server], token: str) -> float:
    """Start a run, kill the server running it mid-step; seconds to the other's resume."""
    steps = folder / "plans"
    for name in ("inside", "release"):
        (steps / name).unlink(missing_ok=True)
    some = next(iter(servers.values()))
    started = httpx.post(
        f"{some.url}/api/v1/runs",
        json={"plan": "slow", "reason": "bench"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    started.raise_for_status()
    run_id = started.json()["run_id"]
    wait_for("the slow step", lambda: (steps / "inside").exists())
    begun = first(url, run_id, "run_started")
    assert begun is not None
    executor = begun[1]["executor"]
    assert isinstance(executor, dict)
    victim = servers.pop(int(executor["pid"]))
    killed_at = time.time()
    victim.kill()
    (steps / "release").write_text("")
    resumed = wait_for("run_resumed", lambda: first(url, run_id, "run_resumed"))
    assert isinstance(resumed, tuple)
    wait_for("the run's end", lambda: first(url, run_id, "run_finished"))
    again = Server(url, folder, f"server-{len(os.listdir(folder))}")
    servers[again.process.pid] = again
    return float(resumed[0]) - killed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="kills to measure")
    args = parser.parse_args()
    with (
        throwaway_database("bench_server_takeover") as url,
        tempfile.TemporaryDirectory(prefix="bench-server-takeover-") as tmp,
    ):
        folder = Path(tmp)
        (folder / "plans").mkdir()
        (folder / "plans" / "slow.yaml").write_text(PLAN)
        token = operator_token(url)  # creates and migrates the store, before the servers
        servers: dict[int, Server] = {}
        try:
            for name in ("a", "b"):
                server = Server(url, folder, name)
                servers[server.process.pid] = server
            took = [one_round(url, folder, servers, token) for _ in range(args.rounds)]
        finally:
            for server in servers.values():
                server.stop()
    print("SIGKILL of the server running a run -> run_resumed by the other server's worker")
    print(
        f"PostgreSQL, two servers, this host   n={len(took)}   "
        f"p50 {statistics.median(took):.3f} s   max {max(took):.3f} s   min {min(took):.3f} s"
    )


if __name__ == "__main__":
    main()
