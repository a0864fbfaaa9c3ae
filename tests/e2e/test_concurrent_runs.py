"""Two real `backout run` processes for one service at the same moment: one runs, the other
is refused with a clear message and exit code 2 — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backout import commands
from backout.settings import Settings
from backout.store.db import open_store
from tests.callers import caller

PLAN = """plan: concurrent
service: checkout
steps:
  - name: slow step
    run: [sh, -c, 'echo ran >> side-effects.txt; sleep 1.5']
    timeout: 10s
"""


@pytest.mark.parametrize("attempt", [1, 2])
def test_two_runs_at_once_one_is_refused(store_url: str, tmp_path: Path, attempt: int) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    open_store(store_url).dispose()  # create and migrate first: the race is on the run
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "backout", "run", str(plan)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "service 'checkout'" in refused
    assert "only one run per service" in refused or "unfinished run" in refused
    assert "Traceback" not in refused
    assert (tmp_path / "side-effects.txt").read_text() == "ran\n"
    runs = commands.runs(caller(Settings(database_url=store_url)))
    assert [r.status for r in runs] == ["succeeded"]


def test_concurrent_first_use_of_a_new_store_migrates_once(store_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "backout", "flags", "set", f"flag-{i}", "--off"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
