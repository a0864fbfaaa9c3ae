"""Fencing tokens: an executor whose lease was taken over writes nothing more to the run's
journal and starts no step, however late it wakes up — shown with a real `backout run`
paused by SIGSTOP and resumed by SIGCONT, on SQLite and PostgreSQL.

Each step holds an exclusive ``flock`` while it runs (as in test_one_owner.py): a second copy
that starts while the first still runs cannot take it and writes ``OVERLAP`` instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backout import commands
from backout.engine.lease import claim_for_resume
from backout.engine.runner import Execution, execute, plan_of
from backout.settings import Settings
from backout.store import leases, repo
from backout.store.db import Store, open_store
from tests.callers import caller
from tests.e2e import procs
from tests.e2e.test_one_owner import marks, only_run

pytestmark = pytest.mark.slow

SERVICE = "fenced"
# step 1 begins, waits for the test's `go` file, then leaves its effect; step 2 only marks
PLAN = """\
plan: fenced
service: fenced
steps:
  - name: hold
    run: [sh, -c, 'exec 9>lock; flock -n 9 || { echo OVERLAP >> marks; exit 1; };
          echo "begin $$" >> marks; echo $$ > inside;
          while [ ! -e go ]; do sleep 0.05; done; echo hold >> marks']
    timeout: 60s
    idempotent: true
  - name: second
    run: [sh, -c, 'exec 9>lock; flock -n 9 || { echo OVERLAP >> marks; exit 1; };
          echo second >> marks']
"""


def start(url: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """`backout ARGS` in its own process group, with a 1 s lease: a paused executor loses
    it soon (its heartbeat is paused with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "backout", *args],
        cwd=cwd,
        env={**os.environ, "BACKOUT_DATABASE_URL": url, "BACKOUT_LEASE_TTL": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def holder(store: Store) -> leases.Holder | None:
    with store.session() as session:
        return leases.holder(session, SERVICE, time.time())


def wait_expired(store: Store, timeout: float = 60.0) -> None:
    """The paused executor's lease runs out (its heartbeat is paused with it)."""
    deadline = time.monotonic() + timeout
    while True:
        current = holder(store)
        if current is None or current.expires_in < 0:
            return
        assert time.monotonic() < deadline, "the paused executor's lease never expired"
        time.sleep(0.05)


def kinds(url: str, run_id: str) -> list[str]:
    return [e.kind for e in commands.journal(caller(Settings(database_url=url)), run_id)]


def test_a_paused_owner_whose_lease_was_taken_writes_nothing_and_starts_nothing(
    store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    runner = start(store_url, "run", "plan.yaml", cwd=tmp_path)
    store = open_store(store_url)
    first = int(procs.wait_for_file(tmp_path / "inside"))
    try:
        os.kill(runner.pid, signal.SIGSTOP)
        run_id = only_run(store_url)
        old = holder(store)
        assert old is not None
        wait_expired(store)
        # the new owner's first move: claim the lease (token + 1), nothing journalled yet
        owner = leases.new_owner()
        with store.session() as session:
            claim_for_resume(session, SERVICE, run_id, owner, 60.0)
        claimed = holder(store)
        assert claimed is not None
        assert (claimed.owner, claimed.token) == (owner, old.token + 1)
        before = kinds(store_url, run_id)
        # the paused owner's step ends while it sleeps; woken, it must record that, and go on
        (tmp_path / "go").write_text("")
        assert procs.wait_gone(first, 60)
        os.kill(runner.pid, signal.SIGCONT)
        _, stderr = runner.communicate(timeout=60)
    finally:
        procs.kill_group_of(first)
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGCONT)
            runner.kill()
            runner.wait(10)
    assert runner.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert f"no longer holds the lease of service '{SERVICE}'" in stderr
    assert f"held by {owner} (fencing token {old.token + 1})" in stderr
    # not one event after the takeover, and the step it would have started next never began
    assert kinds(store_url, run_id) == before
    assert "second" not in marks(tmp_path)

    # the new owner finishes the run with the claim it holds
    with store.session() as session:
        row = repo.get_run(session, run_id)
    plan, _ = plan_of(row)
    final = execute(Execution(store, row, plan, owner, "new-owner", 60.0))
    store.dispose()
    assert final.status == "succeeded", final.message
    assert "OVERLAP" not in marks(tmp_path)
    assert marks(tmp_path).count("second") == 1
    after = kinds(store_url, run_id)
    assert after[len(before)] == "run_resumed"
    assert after.count("step_started") == before.count("step_started") + 2


def test_a_worker_takes_over_a_paused_owner_which_then_cannot_write(
    store_url: str, tmp_path: Path
) -> None:
    """The same with a real `backout worker` as the new owner: it stops the paused owner's
    step, runs the run to its end, and the woken owner is fenced off. Every effect once."""
    (tmp_path / "plan.yaml").write_text(PLAN)
    runner = start(store_url, "run", "plan.yaml", cwd=tmp_path)
    first = int(procs.wait_for_file(tmp_path / "inside"))
    store = open_store(store_url)
    worker = None
    try:
        os.kill(runner.pid, signal.SIGSTOP)
        run_id = only_run(store_url)
        wait_expired(store)
        (tmp_path / "inside").unlink()
        worker = start(store_url, "worker", "--once", cwd=tmp_path)
        again = int(procs.wait_for_file(tmp_path / "inside"))  # the worker's copy of step 1
        assert procs.gone(first), "the worker ran step 1 while the paused copy still ran"
        (tmp_path / "go").write_text("")
        _, worker_err = worker.communicate(timeout=60)
        assert worker.returncode == 0, worker_err
        done = kinds(store_url, run_id)
        os.kill(runner.pid, signal.SIGCONT)
        _, stderr = runner.communicate(timeout=60)
    finally:
        procs.kill_group_of(first)
        for proc in (runner, worker):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait(10)
    store.dispose()
    assert procs.gone(again)
    assert runner.returncode == 1, stderr
    assert f"no longer holds the lease of service '{SERVICE}'" in stderr
    assert kinds(store_url, run_id) == done  # the woken owner wrote nothing
    assert done[-1] == "run_finished"
    # the paused copy was stopped before its effect: each step's effect happened once
    assert [m for m in marks(tmp_path) if m != "begin"] == ["hold", "second"]
    assert "OVERLAP" not in marks(tmp_path)


def test_tokens_count_up_across_claims_and_a_stale_fence_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    try:
        now = time.time()
        with store.session() as session:
            assert leases.try_insert(session, "svc", "run-1", "a", now, 5.0)
            first = leases.fence_of(session, "svc", "a")
        with store.session() as session:
            assert leases.take_over(session, "svc", "run-1", "b", now + 10, 5.0)
            second = leases.fence_of(session, "svc", "b")
        assert (first.token, second.token) == (1, 2)
        stale = pytest.raises(leases.LeaseLost, match=r"held by b \(fencing token 2\)")
        with stale, store.session() as session:
            leases.check_fence(session, first)
        with store.session() as session:
            leases.check_fence(session, second)  # the holder writes on
            assert not leases.renew(session, first, now, 5.0)
            leases.release(session, "svc", "b")
        released = pytest.raises(leases.LeaseLost, match="the lease was released")
        with released, store.session() as session:
            leases.check_fence(session, second)
        with store.session() as session:
            assert leases.holder(session, "svc", now) is None
            assert leases.try_insert(session, "svc", "run-2", "c", now, 5.0)
            # a released lease keeps counting: a token is never handed out twice
            assert leases.fence_of(session, "svc", "c").token == 3
            assert not leases.try_insert(session, "svc", "run-3", "d", now, 5.0)
    finally:
        store.dispose()
