"""`backout journal RUN --follow` and `backout status RUN --watch` against a real run going
on in another process: they print what happens as it happens, end when the run does (or
needs attention), and Ctrl-C stops following (130, no traceback), not the run.

The run's first step announces the run id and then waits for a file the test writes, so the
test decides when the run moves on; every wait is on output or a file, with a deadline."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.e2e import procs
from tests.e2e.test_abandon import invoke, stuck_run

pytestmark = pytest.mark.slow

PLAN = """plan: gated
steps:
  - name: wait for the gate
    run: [sh, -c, 'echo $BACKOUT_RUN_ID > run-id; while [ ! -e go ]; do sleep 0.05; done']
    timeout: 120s
  - name: after the gate
    run: [sh, -c, 'exit {exit_code}']
"""


class Lines:
    """The lines a process writes to one of its pipes, read by a thread as they come."""

    def __init__(self, pipe: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, text: str, timeout: float = 60.0) -> str:
        """Wait for a line containing ``text``; fail with what was seen at the deadline."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in time; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"the pipe closed before {text!r}; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> str:
        """Everything until the pipe closes (the process has exited)."""
        while (line := self._queue.get(timeout=60)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def backout(url: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "backout", "--db", url, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=procs.default_sigint,  # Ctrl-C reaches it even when the suite runs in `&`
    )


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str], str]]:
    """A run waiting at its gate in another process: (store URL, folder, process, run id);
    its second step fails, so the run ends failed once the gate opens."""
    (tmp_path / "plan.yaml").write_text(PLAN.format(exit_code=3))
    url = f"sqlite:///{tmp_path}/store.db"
    runner = backout(url, "run", "plan.yaml", cwd=tmp_path)
    try:
        run_id = procs.wait_for_file(tmp_path / "run-id")
        yield url, tmp_path, runner, run_id
    finally:
        (tmp_path / "go").touch()
        try:
            runner.wait(60)
        finally:
            procs.kill_group_of(runner.pid)


def test_journal_follow_prints_events_as_they_are_journalled(
    gated: tuple[str, Path, subprocess.Popen[str], str],
) -> None:
    url, folder, runner, run_id = gated
    follower = backout(url, "journal", run_id[:6], "--follow", cwd=folder)
    assert follower.stdout is not None
    lines = Lines(follower.stdout)
    lines.until("step_started step 1")  # the past, then it waits at the gate
    (folder / "go").touch()
    lines.until("step_finished step 1")  # journalled after the follower started
    lines.until("step_finished step 2")
    assert "outcome=failed" in lines.until("run_finished")
    assert follower.wait(60) == 0
    rest = lines.rest()
    seqs = [int(line.split()[0]) for line in rest.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order
    assert runner.wait(60) == 1


def test_journal_follow_json_is_one_object_per_line(
    gated: tuple[str, Path, subprocess.Popen[str], str],
) -> None:
    url, folder, _, run_id = gated
    follower = backout(url, "journal", run_id, "--follow", "--json", cwd=folder)
    assert follower.stdout is not None
    lines = Lines(follower.stdout)
    first = json.loads(lines.until('"run_created"'))
    assert first["seq"] == 1
    (folder / "go").touch()
    last = json.loads(lines.until('"run_finished"'))
    assert last["data"]["outcome"] == "failed"
    assert follower.wait(60) == 0


def test_status_watch_shows_progress_then_exits_with_the_outcome(
    gated: tuple[str, Path, subprocess.Popen[str], str],
) -> None:
    url, folder, _, run_id = gated
    watcher = backout(url, "status", run_id, "--watch", cwd=folder)
    assert watcher.stderr is not None
    assert watcher.stdout is not None
    progress = Lines(watcher.stderr)
    progress.until("step 1 wait for the gate")
    (folder / "go").touch()
    progress.until("failed step 2")
    assert watcher.wait(60) == 1  # the run's outcome, as `status` without --watch
    table = watcher.stdout.read()
    assert f"run {run_id}" in table
    assert "after the gate" in table
    assert "exit code 3" in table


def test_ctrl_c_stops_following_not_the_run(
    gated: tuple[str, Path, subprocess.Popen[str], str],
) -> None:
    url, folder, runner, run_id = gated
    for args in (["journal", run_id, "--follow"], ["status", run_id, "--watch"]):
        follower = backout(url, *args, cwd=folder)
        assert follower.stdout is not None
        assert follower.stderr is not None
        watching = args[0] == "status"  # its progress goes to stderr
        out = Lines(follower.stderr if watching else follower.stdout)
        out.until("step 1")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(30) == 130
        stderr = out.rest() if watching else follower.stderr.read()
        assert "interrupted" in stderr
        assert "Traceback" not in stderr
    assert runner.poll() is None  # the run itself goes on
    (folder / "go").touch()
    assert runner.wait(60) == 1


def test_follow_ends_when_the_run_needs_attention(store_url: str, tmp_path: Path) -> None:
    run_id = stuck_run(store_url, tmp_path)
    followed = invoke(store_url, "journal", run_id, "--follow")
    assert followed.exit_code == 0
    assert "run_needs_attention" in followed.output.splitlines()[-1]
    watched = invoke(store_url, "status", run_id, "--watch")
    assert watched.exit_code == 3  # the outcome's code: needs attention


def test_follow_of_a_finished_run_returns_at_once(tmp_path: Path) -> None:
    """A finished run prints its journal (its table) and returns."""
    (tmp_path / "plan.yaml").write_text(PLAN.format(exit_code=0))
    (tmp_path / "go").touch()
    url = f"sqlite:///{tmp_path}/store.db"
    finished = backout(url, "run", "plan.yaml", cwd=tmp_path)
    assert finished.wait(60) == 0
    run_id = (tmp_path / "run-id").read_text().strip()
    done = backout(url, "journal", run_id, "--follow", cwd=tmp_path)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 0
    assert "run_finished" in out.splitlines()[-1]
    watched = backout(url, "status", run_id, "--watch", cwd=tmp_path)
    out, _ = watched.communicate(timeout=60)
    assert watched.returncode == 0
    assert "succeeded" in out
