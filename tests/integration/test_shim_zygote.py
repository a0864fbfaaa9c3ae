"""A run forks its steps' shims from a zygote started with the run and gone with it; an
executor killed mid-step (SIGKILL, as the OOM killer would) takes the step's whole
process group and the zygote with it, as it does a shim it started itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backout import commands, proc
from backout.settings import Settings
from tests.callers import caller
from tests.services import wait_until


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="tester", lease_ttl=5.0)


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def zygotes_of(pid: int) -> list[int]:
    """The shim zygotes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = parent_of(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"zygote" in cmdline and any(b"stepshim" in a for a in cmdline):
            found.append(int(entry.name))
    return found


def test_a_runs_step_shims_are_forked_by_a_zygote_that_goes_with_the_run(
    store_url: str, tmp_path: Path
) -> None:
    # each step prints the command line of its shim's parent
    show = "tr '\\0' ' ' < /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/cmdline"
    steps = "".join(f"  - name: s{n}\n    run: [sh, -c, {json.dumps(show)}]\n" for n in range(3))
    (tmp_path / "plan.yaml").write_text(f"plan: p\nsteps:\n{steps}")
    outputs: list[str] = []

    def observe(event: object, view: object) -> None:
        if getattr(event, "kind", None) == "step_finished":
            outputs.append(str(getattr(event, "data", {}).get("output", "")))

    report = commands.run(caller(settings(store_url)), tmp_path / "plan.yaml", observe)
    assert report.status == "succeeded"
    assert len(outputs) == 3
    assert all("stepshim.py zygote" in output for output in outputs), outputs
    assert len(set(outputs)) == 1  # one zygote forked them all
    assert proc._ZYGOTE == []
    wait_until(lambda: zygotes_of(os.getpid()) == [], 30, "the zygote to exit")


def test_a_run_that_starts_no_process_starts_no_zygote(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text("plan: p\nsteps:\n  - name: pause\n    wait: {delay: 0s}\n")
    zygotes: list[int] = []

    def observe(event: object, view: object) -> None:
        if getattr(event, "kind", None) == "step_finished":
            zygotes.append(len(proc._ZYGOTE))

    report = commands.run(caller(settings(store_url)), tmp_path / "plan.yaml", observe)
    assert report.status == "succeeded"
    assert zygotes == [0]


def test_an_executor_killed_mid_step_leaves_no_process_behind(
    store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "plan.yaml").write_text(
        textwrap.dedent(
            """
            plan: p
            steps:
              - name: first
                run: ['true']
              - name: long
                run: [sh, -c, 'echo $$ > started; sleep 60 & sleep 60; wait']
                timeout: 120s
            """
        )
    )
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
    executor = subprocess.Popen(
        [sys.executable, "-m", "backout", "run", str(tmp_path / "plan.yaml")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = tmp_path / "started"
    try:
        wait_until(lambda: started.exists() and started.read_text().strip() != "", 60, "step 2")
        program = int(started.read_text())
        shim = parent_of(program)
        [zygote] = zygotes_of(executor.pid)
        assert parent_of(shim) == zygote  # the step's shim was forked by the zygote
        assert os.getpgid(program) == shim  # in the shim's group
    finally:
        executor.send_signal(signal.SIGKILL)
        executor.wait(30)
    wait_until(lambda: not proc.group_alive(shim), 30, "the step's group to be killed")
    wait_until(lambda: not proc.alive(zygote, None), 30, "the zygote to exit")


def test_a_spare_forked_for_a_verdict_is_the_first_backout_steps_shim(tmp_path: Path) -> None:
    """``prepare_spare`` (called as a run writes its verdict) has the zygote fork the next
    step's shim in the background; the step then takes that shim instead of a new fork."""
    spawned: list[proc.Spawned] = []
    with proc.shim_zygote():
        proc.ready_zygote()
        proc.drop_spare()
        proc.prepare_spare()
        wait_until(lambda: bool(proc._SPARE), 30, "the spare shim to be forked")
        spare = proc._SPARE[0].proc.pid
        token = proc.SPAWN_HOOK.set(spawned.append)
        try:
            result = proc.run_process(["true"], cwd=tmp_path, timeout=30)
        finally:
            proc.SPAWN_HOOK.reset(token)
            proc.drop_spare()
    assert result.exit_code == 0
    assert [s.pid for s in spawned] == [spare]


def test_no_spare_is_prepared_without_a_zygote(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose backout starts no program has no zygote: preparing a spare must not
    start a shim as a Python of its own (or a zygote)."""
    started: list[bool] = []
    monkeypatch.setattr(proc, "_start_spare", lambda: started.append(True))
    assert proc._ZYGOTE == []
    proc.prepare_spare()
    assert started == []
    assert proc._ZYGOTE == []
