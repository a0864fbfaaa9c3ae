"""Step processes: waited on through a pidfd (no polling), started by a spare shim that
started up while the step before ran, with the same folder, environment, output and stop
semantics as a shim started for the step; a spare runs nothing until its go, and never
outlives its executor or its idle time."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import Token
from pathlib import Path

import pytest

from backout import proc
from backout.errors import ActionError
from backout.stepshim import NEVER_STARTED
from backout.stop import Stopped


@pytest.fixture(autouse=True)
def _no_spare_before_or_after() -> Iterator[None]:
    proc.drop_spare()
    yield
    proc.drop_spare()


def spawned_pids() -> tuple[list[int], Token[Callable[[proc.Spawned], None] | None]]:
    """Record the pid of each shim a step starts (the engine's spawn hook)."""
    pids: list[int] = []
    token = proc.SPAWN_HOOK.set(lambda spawned: pids.append(spawned.pid))
    return pids, token


def gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not proc.alive(pid, None):
            return True
        time.sleep(0.02)
    return False


def test_the_next_step_runs_in_the_spare_started_during_the_one_before(tmp_path: Path) -> None:
    pids, token = spawned_pids()
    try:
        first = proc.run_process(["true"], cwd=tmp_path, timeout=30)
        spare = proc._SPARE[0].proc.pid
        second = proc.run_process(["sh", "-c", "echo $$"], cwd=tmp_path, timeout=30)
    finally:
        proc.SPAWN_HOOK.reset(token)
    assert first.ok
    assert second.ok
    assert pids == [pids[0], spare]  # the second step's group is the spare's
    assert pids[0] != spare
    assert second.output.strip() != str(spare)  # the program is the shim's child


def test_a_spare_runs_the_step_in_its_folder_with_its_environment(tmp_path: Path) -> None:
    proc.run_process(["true"], cwd=tmp_path, timeout=30)  # leaves a spare
    folder = tmp_path / "work dir"
    folder.mkdir()
    big = "x" * 100_000  # more than a pipe holds (64 KiB): the go is written in parts
    script = 'pwd; echo "$GREETING"; printf %s "$BIG" | wc -c; echo oops >&2'
    result = proc.run_process(
        ["sh", "-c", script],
        cwd=folder,
        timeout=30,
        env={"GREETING": "héllo wörld", "BIG": big},
        separate_stderr=True,
    )
    assert result.ok
    assert result.output.split("\n")[:3] == [str(folder), "héllo wörld", "100000"]
    assert result.stderr == "oops\n"
    merged = proc.run_process(
        ["sh", "-c", "echo one; echo two >&2; echo three"], cwd=folder, timeout=30
    )
    assert merged.output == "one\ntwo\nthree\n"  # stderr goes to the same file, in order


def test_a_program_is_looked_up_on_the_steps_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "only-here"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    proc.run_process(["true"], cwd=tmp_path, timeout=30)  # leaves a spare
    path = f"{bin_dir}:{os.environ.get('PATH', os.defpath)}"
    result = proc.run_process(["only-here"], cwd=tmp_path, timeout=30, env={"PATH": path})
    assert result.output == "found\n"


def test_a_missing_folder_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match=r"cannot start true: .*No such file or directory"):
        proc.run_process(["true"], cwd=tmp_path / "missing", timeout=30)


def test_a_spare_killed_while_it_waited_is_not_used(tmp_path: Path) -> None:
    proc.run_process(["true"], cwd=tmp_path, timeout=30)
    spare = proc._SPARE[0].proc
    os.killpg(spare.pid, signal.SIGKILL)
    spare.wait(30)
    pids, token = spawned_pids()
    try:
        result = proc.run_process(["sh", "-c", "echo ran"], cwd=tmp_path, timeout=30)
    finally:
        proc.SPAWN_HOOK.reset(token)
    assert result.output == "ran\n"
    assert pids
    assert pids[0] != spare.pid


def test_a_spare_nobody_claims_goes_away_having_run_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proc, "SPARE_IDLE_S", 0.2)
    shim = proc._start_shim()
    try:
        assert shim.proc.wait(30) == NEVER_STARTED
        assert not proc._claimed(shim)  # too late: the executor starts another
    finally:
        shim.close()


def test_a_spare_goes_away_when_its_executor_dies(tmp_path: Path) -> None:
    """An executor killed (no atexit, no cleanup) leaves its spare nothing to wait for."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from backout import proc
        proc.run_process(["true"], cwd=Path({str(tmp_path)!r}), timeout=30)
        print(proc._SPARE[0].proc.pid, flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -9, done.stderr
    assert gone(int(done.stdout))


def test_the_wait_works_with_file_numbers_above_1024(tmp_path: Path) -> None:
    """select() refuses descriptors above 1024; a server with many connections has them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit on open files is {hard}: raise it to 1200 to run this")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        result = proc.run_process(["sh", "-c", "echo high"], cwd=tmp_path, timeout=30)
        timed_out = proc.run_process(["sleep", "30"], cwd=tmp_path, timeout=0.2)
    finally:
        for fd in held:
            os.close(fd)
        proc.drop_spare()  # opened above 1024: not for the next test
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.output == "high\n"
    assert timed_out.timed_out
    assert timed_out.exit_code is None


def test_a_stop_ends_the_wait_for_a_long_step(tmp_path: Path) -> None:
    """No polling: the stop kills the step's group, and its end wakes the wait."""
    outcome: list[BaseException | proc.ProcResult] = []

    def step() -> None:
        try:
            outcome.append(proc.run_process(["sleep", "60"], cwd=tmp_path, timeout=120))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=step)
    worker.start()
    deadline = time.monotonic() + 30
    while not proc._LIVE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc._LIVE, "the step never started"
    assert proc.stop_all(grace=5)
    worker.join(30)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], Stopped)


def shim_children() -> list[int]:
    """This process's child processes that are step shims (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"stepshim" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_finished_run_leaves_no_spare_shim_behind(tmp_path: Path) -> None:
    from backout import commands
    from backout.settings import Settings
    from tests.callers import caller

    (tmp_path / "plan.yaml").write_text(
        "plan: p\nsteps:\n  - name: one\n    run: ['true']\n  - name: two\n    run: ['true']\n"
    )
    me = caller(Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", actor="t"))
    report = commands.run(me, tmp_path / "plan.yaml")
    assert report.status == "succeeded"
    # the spare started during the last step had no step to run: it went with the run,
    # not after its idle time (a long-lived process would otherwise keep one per run)
    assert proc._SPARE == []
    assert all(gone(pid, 30) for pid in shim_children())
    assert shim_children() == []
