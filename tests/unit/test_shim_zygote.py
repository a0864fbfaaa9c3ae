"""Shims forked by a zygote: while a run executes, each step's shim is a fork of one small
long-lived process instead of a new Python, with every property of a shim kept — its own
session and group, nothing run before the go, the group killed when the executor dies,
the program's own exit — and the zygote never outlives its executor nor reaps a shim
whose pid its executor may still signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextvars import Token
from pathlib import Path

import pytest

from backout import proc
from backout.errors import ActionError
from backout.stepshim import NEVER_STARTED
from backout.stop import Stopped
from tests.services import wait_until


@pytest.fixture(autouse=True)
def _zygote() -> Iterator[None]:
    proc.drop_spare()
    with proc.shim_zygote():
        assert proc._ZYGOTE == []  # started when a step first needs a shim
        assert proc._working_zygote() is not None, "no zygote started"
        yield
        proc.drop_spare()  # as a run does: the zygote waits for its shims still held
    proc.drop_spare()


def zygote_pid() -> int:
    return proc._ZYGOTE[0].proc.pid


def stat_of(pid: int) -> list[str]:
    """state, ppid, pgrp, session, ... of a process (fields after its name)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2 :].split()


def spawned(record: Callable[[proc.Spawned], None]) -> Token[Callable[[proc.Spawned], None] | None]:
    return proc.SPAWN_HOOK.set(record)


def step_in_thread(
    argv: list[str], cwd: Path, timeout: float
) -> tuple[threading.Thread, list[BaseException | proc.ProcResult], list[int]]:
    """``run_process(argv)`` in a thread of its own, as an executor's action thread runs a
    step: (the thread, its outcome once it ends, the pid of each group it spawned)."""
    outcome: list[BaseException | proc.ProcResult] = []
    pids: list[int] = []

    def step() -> None:
        token = spawned(lambda group: pids.append(group.pid))
        try:
            outcome.append(proc.run_process(argv, cwd=cwd, timeout=timeout))
        except BaseException as exc:
            outcome.append(exc)
        finally:
            proc.SPAWN_HOOK.reset(token)

    worker = threading.Thread(target=step)
    worker.start()
    return worker, outcome, pids


def gone(pid: int) -> bool:
    return not proc.alive(pid, None)


def test_a_step_runs_under_a_shim_forked_by_the_zygote_leading_its_own_session(
    tmp_path: Path,
) -> None:
    seen: list[list[str]] = []
    token = spawned(lambda group: seen.append([str(group.pid), *stat_of(group.pid)]))
    try:
        result = proc.run_process(["sh", "-c", "echo $PPID"], cwd=tmp_path, timeout=30)
    finally:
        proc.SPAWN_HOOK.reset(token)
    assert result.ok
    [[pid, _state, ppid, pgrp, session, *_]] = seen
    assert ppid == str(zygote_pid())  # forked, not started by this process
    assert pgrp == pid  # the leader of its group...
    assert session == pid  # ...in a session of its own
    assert result.output.strip() == pid  # the program is the shim's child


def test_the_next_step_runs_in_a_spare_the_zygote_forked_during_the_one_before(
    tmp_path: Path,
) -> None:
    pids: list[int] = []
    token = spawned(lambda group: pids.append(group.pid))
    try:
        first = proc.run_process(["true"], cwd=tmp_path, timeout=30)
        spare = proc._SPARE[0].proc
        assert isinstance(spare, proc._Forked)
        assert stat_of(spare.pid)[1] == str(zygote_pid())  # forked, not a new Python
        second = proc.run_process(["sh", "-c", "echo $PPID"], cwd=tmp_path, timeout=30)
    finally:
        proc.SPAWN_HOOK.reset(token)
    assert first.ok
    assert second.ok
    assert pids == [pids[0], spare.pid]
    assert second.output.strip() == str(spare.pid)


def test_a_forked_spare_killed_while_it_waited_is_not_used(tmp_path: Path) -> None:
    proc.run_process(["true"], cwd=tmp_path, timeout=30)
    spare = proc._SPARE[0].proc
    os.killpg(spare.pid, signal.SIGKILL)
    assert spare.wait(30) == -signal.SIGKILL
    result = proc.run_process(["sh", "-c", "echo $PPID"], cwd=tmp_path, timeout=30)
    assert result.ok
    assert result.output.strip() not in ("", str(spare.pid))


def test_a_forked_spare_nobody_claims_goes_away_having_run_nothing(tmp_path: Path) -> None:
    shim = proc._ZYGOTE[0].fork(0.2)
    try:
        assert shim.proc.wait(30) == NEVER_STARTED
        assert not proc._claimed(shim)  # too late: the executor asks for another
    finally:
        shim.close()


def test_a_forked_shim_runs_the_step_in_its_folder_with_its_environment(tmp_path: Path) -> None:
    folder = tmp_path / "work dir"
    folder.mkdir()
    big = "x" * 100_000  # more than a pipe holds: the go is written in parts
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
        ["sh", "-c", "echo one; echo two >&2; echo three; read x || echo no-stdin"],
        cwd=folder,
        timeout=30,
    )
    assert merged.output == "one\ntwo\nthree\nno-stdin\n"


def test_a_forked_shim_exits_as_its_program_did(tmp_path: Path) -> None:
    assert proc.run_process(["sh", "-c", "exit 3"], cwd=tmp_path, timeout=30).exit_code == 3
    killed = proc.run_process(["sh", "-c", "kill -USR1 $$"], cwd=tmp_path, timeout=30)
    assert killed.exit_code == -signal.SIGUSR1


def test_a_forked_shim_holds_no_other_steps_files(tmp_path: Path) -> None:
    """Only stdin, stdout and stderr reach the program: not the gate, not the zygote's
    socket, not another step's channel."""
    result = proc.run_process(["ls", "/proc/self/fd"], cwd=tmp_path, timeout=30)
    assert sorted(result.output.split()) == ["0", "1", "2", "3"]  # 3: ls's own listing


def test_a_timeout_kills_the_forked_shims_whole_group(tmp_path: Path) -> None:
    pids: list[int] = []
    token = spawned(lambda group: pids.append(group.pid))
    try:
        result = proc.run_process(
            ["sh", "-c", "sleep 60 & sleep 60; wait"], cwd=tmp_path, timeout=0.5
        )
    finally:
        proc.SPAWN_HOOK.reset(token)
    assert result.timed_out
    assert result.exit_code is None
    wait_until(lambda: not proc.group_alive(pids[0]), 30, "the step's group to be gone")


def test_sigterm_to_the_group_is_for_the_program_the_forked_shim_survives_it(
    tmp_path: Path,
) -> None:
    script = "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 60 & wait"
    worker, outcome, pids = step_in_thread(["sh", "-c", script], tmp_path, 60)
    wait_until(lambda: bool(proc._LIVE), 30, "the step to start")
    wait_until(lambda: len(pids) == 1, 30, "the step's group")
    # the program has set its trap once it says ready; the file is the shim's stdout
    wait_until(lambda: _says(pids[0], "ready"), 30, "the program to be ready")
    os.killpg(pids[0], signal.SIGTERM)
    worker.join(60)
    assert not worker.is_alive()
    [result] = outcome
    assert isinstance(result, proc.ProcResult)
    assert result.exit_code == 7  # the shim survived the signal and exited as sh did
    assert "got TERM" in result.output
    proc._kill_group(pids[0])  # the orphaned `sleep 60`


def _says(pid: int, word: str) -> bool:
    try:
        return word in Path(f"/proc/{pid}/fd/1").read_text()
    except OSError:
        return False


def test_a_forked_shim_runs_nothing_without_its_go(tmp_path: Path) -> None:
    shim = proc._ZYGOTE[0].fork()
    os.close(shim.gate)  # as if the executor died before it journalled the group
    shim.gate = -1
    try:
        assert shim.proc.wait(30) == NEVER_STARTED
    finally:
        shim.output.close()
        shim.errors.close()
        assert isinstance(shim.proc, proc._Forked)
        shim.proc.release()


def test_the_zygote_keeps_an_ended_shims_pid_until_the_executor_lets_go(tmp_path: Path) -> None:
    """Reaped only after release: a pid the executor may still signal is not reused."""
    shim = proc._ZYGOTE[0].fork()
    assert isinstance(shim.proc, proc._Forked)
    os.close(shim.gate)
    shim.gate = -1
    try:
        shim.proc.wait(30)
        assert stat_of(shim.proc.pid)[0] == "Z"  # ended, not reaped: the pid stays taken
    finally:
        shim.output.close()
        shim.errors.close()
        shim.proc.release()
    wait_until(lambda: not Path(f"/proc/{shim.proc.pid}").exists(), 30, "the shim reaped")


def test_steps_in_parallel_share_the_zygote(tmp_path: Path) -> None:
    results: list[proc.ProcResult] = []
    lock = threading.Lock()

    def step(number: int) -> None:
        result = proc.run_process(
            ["sh", "-c", f"sleep 0.2; echo {number}"], cwd=tmp_path, timeout=30
        )
        with lock:
            results.append(result)

    workers = [threading.Thread(target=step, args=(n,)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sorted(r.output for r in results) == [f"{n}\n" for n in range(6)]


def test_a_stop_ends_a_forked_step(tmp_path: Path) -> None:
    worker, outcome, _ = step_in_thread(["sleep", "60"], tmp_path, 120)
    wait_until(lambda: bool(proc._LIVE), 30, "the step to start")
    assert proc.stop_all(grace=5)
    worker.join(30)
    assert not worker.is_alive()
    [result] = outcome
    assert isinstance(result, Stopped)


def test_without_its_zygote_a_step_starts_its_own_shim(tmp_path: Path) -> None:
    zygote = proc._ZYGOTE[0].proc
    zygote.kill()
    zygote.wait(30)
    pids: list[tuple[int, str]] = []
    token = spawned(lambda group: pids.append((group.pid, stat_of(group.pid)[1])))
    try:
        first = proc.run_process(["sh", "-c", "echo ran"], cwd=tmp_path, timeout=30)
        second = proc.run_process(["sh", "-c", "echo again"], cwd=tmp_path, timeout=30)
    finally:
        proc.SPAWN_HOOK.reset(token)
    assert first.output == "ran\n"
    assert second.output == "again\n"
    assert [parent for _, parent in pids] == [str(os.getpid())] * 2  # this process's own


def test_a_step_whose_zygote_dies_fails_and_its_group_is_killed(tmp_path: Path) -> None:
    worker, outcome, pids = step_in_thread(["sleep", "60"], tmp_path, 120)
    wait_until(lambda: len(pids) == 1 and bool(proc._LIVE), 30, "the step to start")
    zygote = proc._ZYGOTE[0].proc
    zygote.kill()
    zygote.wait(30)
    worker.join(60)
    assert not worker.is_alive()
    [result] = outcome
    assert isinstance(result, ActionError)
    assert "zygote died" in result.message
    wait_until(lambda: not proc.group_alive(pids[0]), 30, "the step's group to be gone")


def test_the_zygote_goes_with_the_last_run_using_it(tmp_path: Path) -> None:
    zygote = proc._ZYGOTE[0].proc
    with proc.shim_zygote():  # a second run in this process at the same time
        assert proc._ZYGOTE[0].proc is zygote
    assert zygote.poll() is None  # the first still runs
    proc.run_process(["true"], cwd=tmp_path, timeout=30)


def test_the_zygote_exits_when_the_run_ends(tmp_path: Path) -> None:
    with proc.shim_zygote():
        pass  # nested: the fixture's run still holds it
    zygote = proc._ZYGOTE[0].proc
    proc._ZYGOTE_USERS[0] -= 1  # as the fixture's run ending would
    try:
        [ending] = list(proc._ZYGOTE)
        proc._ZYGOTE.clear()
        ending.close()
        assert zygote.returncode is not None
    finally:
        proc._ZYGOTE_USERS[0] += 1


def test_an_executor_killed_mid_step_takes_the_step_and_the_zygote_with_it(
    tmp_path: Path,
) -> None:
    """SIGKILL (no atexit, no cleanup): the forked shim's gate reads EOF and it kills its
    group; the zygote's socket reads EOF and it exits; nothing is left behind."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from backout import proc

        def hook(group):
            zygote = proc._ZYGOTE[0].proc.pid
            print(group.pid, zygote, flush=True)

        proc.SPAWN_HOOK.set(hook)
        with proc.shim_zygote():
            proc.run_process(
                ["sh", "-c", "sleep 60 & sleep 60; wait"], cwd=Path({str(tmp_path)!r}),
                timeout=120,
            )
        """
    )
    executor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert executor.stdout is not None
        shim, zygote = (int(word) for word in executor.stdout.readline().split())
        wait_until(lambda: _group_size(shim) >= 3, 30, "the step's programs to start")
        assert stat_of(shim)[1] == str(zygote)
    finally:
        executor.kill()
        executor.wait(30)
    wait_until(lambda: not proc.group_alive(shim), 30, "the step's group to be killed")
    wait_until(lambda: gone(zygote), 30, "the zygote to exit")


def _group_size(pgid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = stat_of(int(entry.name))
            except OSError:
                continue
            count += fields[2] == str(pgid) and fields[0] != "Z"
    return count


def test_a_stop_of_one_run_ends_its_steps_and_not_another_runs(tmp_path: Path) -> None:
    """Two runs' executors in one process (a server's workers): one reaches its safe point
    and stops what is left of its steps; the other's step, still draining, runs on."""
    outcome: dict[str, BaseException | proc.ProcResult] = {}

    def step(owner: str, argv: list[str]) -> None:
        proc.STEP_OWNER.set(owner)  # a thread starts with an empty context
        try:
            outcome[owner] = proc.run_process(argv, cwd=tmp_path, timeout=120)
        except BaseException as exc:
            outcome[owner] = exc

    go = tmp_path / "go"
    stopped = threading.Thread(target=step, args=("run-a", ["sleep", "60"]))
    draining = threading.Thread(
        target=step,
        args=("run-b", ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; echo done"]),
    )
    stopped.start()
    draining.start()
    wait_until(lambda: len(proc._LIVE) == 2, 30, "both steps to start")
    assert proc.stop_all(grace=5, owner="run-a")
    stopped.join(30)
    assert isinstance(outcome["run-a"], Stopped)
    assert draining.is_alive()  # run-b's step was not touched
    assert [live.owner for live in proc._LIVE.values()] == ["run-b"]
    go.touch()
    draining.join(30)
    result = outcome["run-b"]
    assert isinstance(result, proc.ProcResult)
    assert result.output == "done\n"
