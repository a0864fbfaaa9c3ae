"""Settling a run before it is taken over: which interrupted steps may still be running,
decided from the journal and from real processes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backout import proc
from backout.engine.layout import Unit, layout
from backout.engine.orphans import Executor, StepMayBeRunning, settle
from backout.engine.view import RunView, fold, new_view
from backout.kernel.events import Event
from backout.plans import load_plan
from backout.stepshim import NEVER_STARTED
from tests.e2e.procs import gone, wait_gone
from tests.services import wait_until

PLAN = """\
plan: orphans
steps:
  - name: restart
    run: [./restart]
    timeout: 30s
  - name: call
    http: {url: "http://127.0.0.1:9/x"}
    timeout: 20s
"""


@pytest.fixture
def units(tmp_path: Path) -> list[Unit]:
    (tmp_path / "plan.yaml").write_text(PLAN)
    return layout(load_plan(tmp_path / "plan.yaml").plan, "backout")


@pytest.fixture
def orphan() -> Iterator[subprocess.Popen[bytes]]:
    """A real process in its own group, as a dead executor's step would leave it."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield child
    child.kill()
    child.wait()


def journal(
    executor: Executor, step: int, at: float, groups: tuple[proc.Spawned, ...] = ()
) -> list[Event]:
    events = [
        Event("r", 1, at, "run_created"),
        Event("r", 2, at, "run_started", data={"owner": "x", "executor": executor.to_json()}),
        Event("r", 3, at, "step_started", step=step, attempt=1),
    ]
    for group in groups:
        events.append(Event("r", len(events) + 1, at, "step_process", step, 1, group.to_json()))
    return events


def view_of(units: list[Unit], events: list[Event]) -> RunView:
    return fold(new_view("r", [u.name for u in units], []), events)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


HERE, BOOT = proc.this_host()


def test_a_live_group_of_a_dead_executor_on_this_host_is_killed(
    units: list[Unit], orphan: subprocess.Popen[bytes]
) -> None:
    group = proc.Spawned(orphan.pid, proc.start_time(orphan.pid), HERE, BOOT)
    executor = Executor(HERE, BOOT, dead_pid(), None)
    events = journal(executor, 0, time.time(), (group,))
    killed = settle(view_of(units, events), units, events)
    assert [k["pid"] for k in killed] == [orphan.pid]
    assert wait_gone(orphan.pid)


def test_a_reused_pid_is_never_killed(units: list[Unit], orphan: subprocess.Popen[bytes]) -> None:
    start = proc.start_time(orphan.pid)
    assert start is not None
    group = proc.Spawned(orphan.pid, start - 1, HERE, BOOT)  # the old group had another start
    events = journal(Executor(HERE, BOOT, dead_pid(), None), 0, time.time(), (group,))
    assert settle(view_of(units, events), units, events) == []
    assert not gone(orphan.pid)


def test_a_run_step_is_settled_once_its_group_is_gone_even_if_its_executor_hangs(
    units: list[Unit], orphan: subprocess.Popen[bytes]
) -> None:
    group = proc.Spawned(orphan.pid, proc.start_time(orphan.pid), HERE, BOOT)
    alive = Executor.this_process()  # alive: a hung executor looks like this
    events = journal(alive, 0, time.time(), (group,))
    settle(view_of(units, events), units, events)
    assert wait_gone(orphan.pid)


def test_an_in_process_step_of_a_live_executor_waits_out_its_timeout(units: list[Unit]) -> None:
    at = time.time()
    events = journal(Executor.this_process(), 1, at)
    with pytest.raises(StepMayBeRunning) as caught:
        settle(view_of(units, events), units, events)
    assert caught.value.until == pytest.approx(at + 20 + 5)
    assert "step 2 'call' may still be running" in caught.value.message
    assert f"pid {os.getpid()}" in caught.value.message


def test_an_in_process_step_of_a_dead_executor_on_this_host_is_settled(units: list[Unit]) -> None:
    events = journal(Executor(HERE, BOOT, dead_pid(), None), 1, time.time())
    assert settle(view_of(units, events), units, events) == []


def test_another_host_waits_until_the_step_timeout_has_passed(units: list[Unit]) -> None:
    elsewhere = Executor("elsewhere.example", "b00t", 1234, 99)
    group = proc.Spawned(1234, 99, "elsewhere.example", "b00t")
    recent = journal(elsewhere, 0, time.time(), (group,))
    with pytest.raises(StepMayBeRunning):
        settle(view_of(units, recent), units, recent)
    old = journal(elsewhere, 0, time.time() - 36, (group,))  # 30s timeout + 5s grace ago
    assert settle(view_of(units, old), units, old) == []


def test_another_boot_of_this_host_ran_nothing_that_still_lives(units: list[Unit]) -> None:
    before_reboot = Executor(HERE, "an-older-boot", 1, 1)
    group = proc.Spawned(os.getpid(), proc.start_time(os.getpid()), HERE, "an-older-boot")
    events = journal(before_reboot, 1, time.time(), (group,))
    assert settle(view_of(units, events), units, events) == []


def test_a_graceful_stop_settles_at_once(units: list[Unit]) -> None:
    events = journal(Executor.this_process(), 1, time.time())
    events.append(Event("r", 4, time.time(), "run_stopped", data={"steps_stopped": True}))
    assert settle(view_of(units, events), units, events) == []


def test_the_shim_never_starts_the_program_when_its_executor_dies_first(tmp_path: Path) -> None:
    """No go, no program: the gate reads EOF and the shim exits without running it."""
    marker = tmp_path / "ran"
    gate_read, gate_write = os.pipe()
    shim = subprocess.Popen(
        [sys.executable, "-I", "-S", proc.SHIM, str(gate_read), "60", "touch", str(marker)],
        pass_fds=(gate_read,),
        start_new_session=True,
    )
    os.close(gate_read)
    os.close(gate_write)  # the executor died before it said go
    assert shim.wait(30) == NEVER_STARTED
    assert not marker.exists()


STUBBORN = ["sh", "-c", "trap '' TERM; echo $$ > pid; sleep 60"]  # ignores a graceful stop


def start_shim(tmp_path: Path, deadline: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """A shim running `sh` that writes its pid and sleeps; (shim, gate, program pid)."""
    gate_read, gate_write = os.pipe()
    shim = subprocess.Popen(
        [sys.executable, "-I", "-S", proc.SHIM, str(gate_read), deadline, *STUBBORN],
        pass_fds=(gate_read,),
        start_new_session=True,
        cwd=tmp_path,
    )
    os.close(gate_read)
    os.write(gate_write, b"g")
    waited = time.monotonic() + 30
    while not ((tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip()):
        assert time.monotonic() < waited
        time.sleep(0.02)
    return shim, gate_write, int((tmp_path / "pid").read_text())


def test_the_shim_kills_its_group_when_its_executor_dies(tmp_path: Path) -> None:
    shim, gate, program = start_shim(tmp_path, "60")
    os.close(gate)  # the executor died
    assert shim.wait(30) == -9
    assert wait_gone(program)


def test_the_shim_ends_the_step_at_its_deadline_whatever_the_executor_does(
    tmp_path: Path,
) -> None:
    """A stopped or hung executor cannot enforce the timeout: the shim does."""
    shim, gate, program = start_shim(tmp_path, "0.5")
    try:
        assert shim.wait(30) == -9
        assert wait_gone(program)
    finally:
        os.close(gate)


def test_a_sigterm_to_the_group_leaves_the_shim_watching(tmp_path: Path) -> None:
    """A graceful stop's SIGTERM is for the program; a program that ignores it is still
    watched by its shim, so the SIGKILL after the grace period finds the whole group."""
    shim, gate, program = start_shim(tmp_path, "60")
    try:
        os.killpg(shim.pid, signal.SIGTERM)
        assert not wait_gone(program, 0.5)  # the program ignores it
        assert shim.poll() is None  # and the shim survived it
        assert proc.group_alive(shim.pid)
        os.killpg(shim.pid, signal.SIGKILL)
        assert shim.wait(30) == -9
        assert wait_gone(program)
        # the program's own children die with it, a moment apart: wait for the last
        wait_until(lambda: not proc.group_alive(shim.pid), 30, "the group to be gone")
    finally:
        os.close(gate)
