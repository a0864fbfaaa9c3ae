"""One owner per step, always: a killed or stopped executor leaves nothing running, and no
step ever runs in two copies at once — shown with real `backout` processes, SIGKILL and
SIGTERM, on SQLite and PostgreSQL.

The steps here hold an exclusive ``flock`` while they run: a second copy that starts
while the first still runs cannot take it and writes ``OVERLAP`` instead of working.
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
from backout.errors import UsageError
from backout.settings import Settings
from backout.store import leases
from backout.store.db import open_store
from tests.callers import caller
from tests.e2e import procs

pytestmark = pytest.mark.slow

# begin, then wait until the test lets it go (a file), then record the effect
GUARDED = """  - name: {name}
    run: [sh, -c, 'exec 9>lock; flock -n 9 || {{ echo OVERLAP >> marks; exit 1; }};
          echo "begin $$" >> marks; echo $$ > inside;
          while [ ! -e release ]; do sleep 0.05; done; echo effect >> marks']
    timeout: 60s
    idempotent: {idempotent}
"""


def plan_with(folder: Path, idempotent: bool, service: str = "owned") -> Path:
    plan = folder / "plan.yaml"
    step = GUARDED.format(name="guarded", idempotent=str(idempotent).lower())
    plan.write_text(f"plan: owned\nservice: {service}\nsteps:\n{step}")
    return plan


def start(url: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "backout", *args],
        cwd=cwd,
        env={**os.environ, "BACKOUT_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as under a service manager
    )


def backout(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backout", *args],
        cwd=cwd,
        env={**os.environ, "BACKOUT_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def marks(folder: Path) -> list[str]:
    path = folder / "marks"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def step_pid(folder: Path) -> int:
    return int(procs.wait_for_file(folder / "inside"))


def only_run(url: str) -> str:
    runs = commands.runs(caller(Settings(database_url=url)))
    assert len(runs) == 1
    return str(runs[0].run_id)


def lease_holder(url: str, service: str = "owned") -> leases.Holder | None:
    store = open_store(url)
    try:
        with store.session() as session:
            return leases.holder(session, service, time.time())
    finally:
        store.dispose()


def release(folder: Path) -> None:
    (folder / "release").write_text("")


def test_resume_at_once_after_sigkill_of_the_executor_group_never_overlaps(
    store_url: str, tmp_path: Path
) -> None:
    plan = plan_with(tmp_path, idempotent=True)
    runner = start(store_url, "run", str(plan), cwd=tmp_path)
    first = step_pid(tmp_path)
    os.killpg(runner.pid, signal.SIGKILL)  # the executor and everything in its group
    assert runner.wait(10) == -signal.SIGKILL
    (tmp_path / "inside").unlink()
    release(tmp_path)  # from now on a copy of the step would finish at once
    try:
        resumed = backout(store_url, "resume", only_run(store_url), "--json", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        procs.kill_group_of(first)
    assert procs.gone(first), "the first copy still runs"
    assert marks(tmp_path) == ["begin", "begin", "effect"]  # no OVERLAP, one effect


def test_a_non_idempotent_step_killed_with_its_executor_is_not_doubled_by_retry(
    store_url: str, tmp_path: Path
) -> None:
    plan = plan_with(tmp_path, idempotent=False)
    runner = start(store_url, "run", str(plan), cwd=tmp_path)
    first = step_pid(tmp_path)
    runner.send_signal(signal.SIGKILL)
    assert runner.wait(10) == -signal.SIGKILL
    try:
        assert procs.wait_gone(first), "the step outlived its executor"
    finally:
        procs.kill_group_of(first)
    run_id = only_run(store_url)
    attention = backout(store_url, "resume", run_id, cwd=tmp_path)
    assert attention.returncode == 3, attention.stderr
    assert "effect" not in marks(tmp_path)  # the operator looks: no effect, and none can come
    release(tmp_path)
    retried = backout(store_url, "resume", run_id, "--retry", "1", cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert marks(tmp_path).count("effect") == 1
    assert "OVERLAP" not in marks(tmp_path)


def test_sigterm_stops_the_run_releases_the_lease_and_resume_continues(
    store_url: str, tmp_path: Path
) -> None:
    plan = plan_with(tmp_path, idempotent=True)
    runner = start(store_url, "run", str(plan), cwd=tmp_path)
    first = step_pid(tmp_path)
    runner.send_signal(signal.SIGTERM)
    _, stderr = runner.communicate(timeout=30)
    try:
        assert runner.returncode == 143, stderr
        assert procs.gone(first), "SIGTERM left the step running"
    finally:
        procs.kill_group_of(first)
    run_id = only_run(store_url)
    assert "Traceback" not in stderr
    assert "stopped by SIGTERM during step 1 'guarded'" in stderr
    assert f"continue it with `backout resume {run_id}`" in stderr
    assert lease_holder(store_url) is None
    last = commands.journal(caller(Settings(database_url=store_url)), run_id)[-1]
    assert (last.kind, last.data["signal"], last.data["steps_stopped"]) == (
        "run_stopped",
        "SIGTERM",
        True,
    )
    assert last.step == 0
    release(tmp_path)
    resumed = backout(store_url, "resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert marks(tmp_path) == ["begin", "begin", "effect"]


def test_sigterm_stops_a_step_that_ignores_sigterm_too(store_url: str, tmp_path: Path) -> None:
    """The step's program traps SIGTERM: after the grace period it gets SIGKILL, and the
    stop is journalled as complete only then, so resume never runs a second copy."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: owned\nservice: owned\nsteps:\n"
        + GUARDED.format(name="stubborn", idempotent="true").replace(
            "exec 9>lock;", 'trap "" TERM; exec 9>lock;'
        )
    )
    runner = start(store_url, "run", str(plan), cwd=tmp_path)
    first = step_pid(tmp_path)
    runner.send_signal(signal.SIGTERM)
    _, stderr = runner.communicate(timeout=60)
    try:
        assert runner.returncode == 143, stderr
        assert procs.gone(first), "the step that ignored SIGTERM outlived the stop"
    finally:
        procs.kill_group_of(first)
    run_id = only_run(store_url)
    assert commands.journal(caller(Settings(database_url=store_url)), run_id)[-1].data[
        "steps_stopped"
    ]
    (tmp_path / "inside").unlink()
    release(tmp_path)
    resumed = backout(store_url, "resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert marks(tmp_path) == ["begin", "begin", "effect"]


def orphaned_run(url: str, folder: Path, drain_step: str) -> str:
    """A run whose executor died after step 1: a worker will pick it up at step 2."""
    plan = folder / "plan.yaml"
    plan.write_text(
        "plan: drained\nservice: owned\nsteps:\n"
        "  - name: first\n    run: [sh, -c, 'echo first >> marks']\n"
        f"  - name: slow\n    run: [sh, -c, '{drain_step}']\n    timeout: 60s\n"
        "  - name: third\n    run: [sh, -c, 'echo third >> marks']\n"
    )
    killed = subprocess.run(
        [sys.executable, "-m", "backout", "run", str(plan)],
        cwd=folder,
        env={**os.environ, "BACKOUT_DATABASE_URL": url, "BACKOUT_FAILPOINTS": "step_finished:1"},
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    return only_run(url)


def test_sigterm_drains_a_worker_the_step_in_flight_finishes(
    store_url: str, tmp_path: Path
) -> None:
    run_id = orphaned_run(
        store_url,
        tmp_path,
        "echo $$ > inside; while [ ! -e release ]; do sleep 0.05; done; echo slow >> marks",
    )
    worker = start(store_url, "worker", "--drain", "60s", cwd=tmp_path)
    slow = step_pid(tmp_path)
    worker.send_signal(signal.SIGTERM)
    # the stop is requested; the step goes on until it is done
    wait_for_event(store_url, run_id, "step_process")
    release(tmp_path)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 143, stderr
    assert procs.gone(slow)
    assert marks(tmp_path) == ["first", "slow"]  # step 3 was never started
    events = commands.journal(caller(Settings(database_url=store_url)), run_id)
    assert events[-1].kind == "run_stopped"
    assert events[-1].step is None  # stopped between steps
    assert lease_holder(store_url) is None
    assert "third" not in [e.data.get("summary") for e in events]


def test_a_worker_drain_that_runs_out_stops_the_step(store_url: str, tmp_path: Path) -> None:
    run_id = orphaned_run(store_url, tmp_path, "echo $$ > inside; sleep 60; echo slow >> marks")
    worker = start(store_url, "worker", "--drain", "200ms", cwd=tmp_path)
    slow = step_pid(tmp_path)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    try:
        assert worker.returncode == 143, stderr
        assert procs.gone(slow)
    finally:
        procs.kill_group_of(slow)
    events = commands.journal(caller(Settings(database_url=store_url)), run_id)
    assert events[-1].kind == "run_stopped"
    assert (events[-1].step, events[-1].data["steps_stopped"]) == (1, True)
    assert f"backout resume {run_id}" in stderr
    assert lease_holder(store_url) is None


def wait_for_run(url: str, timeout: float = 60.0) -> str:
    """The run's id, once the executor has created it (and the store)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if commands.runs(caller(Settings(database_url=url))):
                return only_run(url)
        except UsageError:  # no store yet
            pass
        assert time.monotonic() < deadline, "the run was never created"
        time.sleep(0.05)


def wait_for_event(url: str, run_id: str, kind: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while kind not in [
        e.kind for e in commands.journal(caller(Settings(database_url=url)), run_id)
    ]:
        assert time.monotonic() < deadline, f"no {kind} in the journal of {run_id}"
        time.sleep(0.05)


def test_sigterm_stops_a_watch_and_releases_its_lease(store_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: watched\nservice: owned\n"
        "telemetry:\n  errors: {command: [echo, '0']}\n"
        "triggers:\n  - name: errors\n    signal: errors\n    threshold: {above: 0.5}\n"
        "    on_no_data: pause\n"
        "steps:\n  - name: back\n    run: [sh, -c, 'echo back >> marks']\n"
    )
    watcher = start(store_url, "watch", str(plan), "--for", "10m", "--json", cwd=tmp_path)
    run_id = wait_for_run(store_url)
    wait_for_event(store_url, run_id, "watch_started")
    watcher.send_signal(signal.SIGTERM)
    stdout, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stdout == ""  # no half report on stdout for machines
    assert lease_holder(store_url) is None
    last = commands.journal(caller(Settings(database_url=store_url)), run_id)[-1]
    assert last.kind == "run_stopped"
    assert "marks" not in [p.name for p in tmp_path.iterdir()]  # nothing was backed out
