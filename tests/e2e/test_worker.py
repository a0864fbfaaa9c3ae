"""Workers finish runs whose executor died or hung, once the lease says so — never twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backout import commands
from backout.settings import Settings
from tests.callers import caller
from tests.e2e import crash_plan, procs

pytestmark = pytest.mark.slow


def start(url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "backout", *args],
        env={**os.environ, "BACKOUT_DATABASE_URL": url, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_lease_expired(url: str, run_id: str, timeout: float = 30.0) -> None:
    """The hung executor's lease runs out (its heartbeat is stopped with it)."""
    from backout.store import leases
    from backout.store.db import open_store

    store = open_store(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with store.session() as session:
                holder = leases.holder(session, "crashy", time.time())
            if holder is None or holder.expires_in < 0:
                return
            assert time.monotonic() < deadline, f"lease of {run_id} never expired"
            time.sleep(0.05)
    finally:
        store.dispose()


def assert_finished_once(url: str, run_id: str) -> None:
    report = commands.status(caller(Settings(database_url=url)), run_id)
    assert report.status == "succeeded", report.message
    events = commands.journal(caller(Settings(database_url=url)), run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sorted(e.step for e in events if e.kind == "step_finished") == [0, 1, 2, 3, 4]


def test_hung_executor_loses_its_lease_to_a_worker(store_url: str, tmp_path: Path) -> None:
    plan = crash_plan.write(tmp_path)
    runner = start(store_url, "run", str(plan), SLOW_STEP="3", BACKOUT_LEASE_TTL="1")
    step_pid = int(procs.wait_for_file(tmp_path / "inside-3"))
    runner.send_signal(signal.SIGSTOP)  # hung, not dead: only the lease expiry frees the run
    try:
        run_id = commands.runs(caller(Settings(database_url=store_url)))[0].run_id
        wait_lease_expired(store_url, run_id)
        worker = start(store_url, "worker", "--once", "--json")
        assert worker.wait(60) == 0, worker.stderr.read() if worker.stderr else ""
        # the taker-over killed the hung executor's step before it ran step 3 again
        assert procs.gone(step_pid)
        assert_finished_once(store_url, run_id)
        resumed = next(
            e
            for e in commands.journal(caller(Settings(database_url=store_url)), run_id)
            if e.kind == "run_resumed"
        )
        assert [o["step"] for o in resumed.data["orphans_stopped"]] == [2]
        before = len(commands.journal(caller(Settings(database_url=store_url)), run_id))
    finally:
        procs.kill_group_of(step_pid)
        runner.send_signal(signal.SIGCONT)
    # the woken executor must not write into a journal another worker has moved on
    assert runner.wait(60) != 0
    stderr = runner.stderr.read() if runner.stderr else ""
    assert "Traceback" not in stderr
    # fenced off: its lease (owner and fencing token) was taken over
    assert "no longer holds the lease of service 'crashy'" in stderr
    assert len(commands.journal(caller(Settings(database_url=store_url)), run_id)) == before


def test_two_workers_share_orphans_without_running_any_twice(
    store_url: str, tmp_path: Path
) -> None:
    run_ids = []
    for n, failpoint in enumerate(
        ["step_finished:1", "step_started:3", "action_done:5", "before_step:2"]
    ):
        folder = tmp_path / f"svc{n}"
        folder.mkdir()
        plan = crash_plan.write(folder, service=f"svc{n}")
        killed = start(store_url, "run", str(plan), BACKOUT_FAILPOINTS=failpoint)
        assert killed.wait(60) == -signal.SIGKILL
    run_ids = [r.run_id for r in commands.runs(caller(Settings(database_url=store_url)))]
    workers = [start(store_url, "worker", "--once", "--json") for _ in range(2)]
    for worker in workers:
        assert worker.wait(120) == 0, worker.stderr.read() if worker.stderr else ""
    for run_id in run_ids:
        assert_finished_once(store_url, run_id)
    for n in range(4):
        seen = crash_plan.side_effects(tmp_path / f"svc{n}")
        assert seen.count(2) == 1
        assert seen.count(4) == 1


def test_worker_leaves_a_live_run_alone(store_url: str, tmp_path: Path) -> None:
    plan = crash_plan.write(tmp_path)
    runner = start(store_url, "run", str(plan), SLOW_STEP="2")
    step_pid = int(procs.wait_for_file(tmp_path / "inside-2"))
    try:
        worker = start(store_url, "worker", "--once", "--json")
        assert worker.wait(60) == 0
        assert worker.stdout is not None
        assert worker.stdout.read().strip() == "[]"
        assert not procs.gone(step_pid)  # the live run's step was left alone
    finally:
        runner.kill()
        runner.wait(10)
        assert procs.wait_gone(step_pid), "the step outlived its killed executor"
