"""backout.heap: a long-lived process freezes its start-up's objects once (gc.freeze), so a
full collection no longer walks them between an alert and its backout. Each case runs in
an interpreter of its own: freezing is per process, and this one's heap is the suite's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def python(code: str, cwd: Path | None = None) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


def test_settle_freezes_what_is_alive_once() -> None:
    before, first, second = python(
        """
        import gc
        from backout import heap
        kept = [[i] for i in range(5000)]
        before = gc.get_freeze_count()
        heap.settle()
        first = gc.get_freeze_count()
        more = [[i] for i in range(5000)]
        heap.settle()  # once per process: what came after stays the collector's
        print(before, first, gc.get_freeze_count())
        """
    )
    assert before == 0
    assert first >= 5000
    assert second == first


def test_a_run_settles_its_process_before_its_first_step(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(
        "plan: p\nservice: shop\nsteps:\n  - name: one\n    run: [echo, hi]\n"
    )
    before, after = python(
        f"""
        import gc
        from backout import commands
        from backout.commands.caller import Caller
        from backout.store.db import Store
        before = gc.get_freeze_count()
        with Store("sqlite:///{tmp_path}/backout.db") as store:
            assert commands.run(Caller(store, "tester"), "plan.yaml").status == "succeeded"
        print(before, gc.get_freeze_count())
        """,
        cwd=tmp_path,
    )
    assert before == 0
    assert after > 10_000  # SQLAlchemy, pydantic, the plan: the start-up's objects


def test_the_command_line_starts_with_the_collector_held(tmp_path: Path) -> None:
    """`backout` imports with the cycle collector paused and resumes it (freezing what
    start-up built) as the command is found, before the command's own work."""
    (tmp_path / "plan.yaml").write_text(
        "plan: p\nservice: shop\nsteps:\n  - name: one\n    run: [echo, hi]\n"
    )
    found = python(
        """
        import contextlib, gc, io, sys
        from backout.cli import base, main
        states = []
        resolve = base.BackoutGroup.resolve_command
        def spy(self, ctx, args):
            states.append(gc.isenabled())  # while the command's module loads
            found = resolve(self, ctx, args)
            states.append(gc.isenabled())  # as the command starts
            states.append(gc.get_freeze_count() > 0)
            return found
        base.BackoutGroup.resolve_command = spy
        for argv in (["validate", "plan.yaml"], ["--version"]):
            sys.argv = ["backout", *argv]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    main()
            except SystemExit:
                pass
            states.append(gc.isenabled())  # after: whatever the command did
        print(*(int(state) for state in states))
        """,
        cwd=tmp_path,
    )
    assert found == [0, 1, 1, 1, 1]


def test_release_without_hold_leaves_the_collector_as_it_was() -> None:
    states = python(
        """
        import gc
        from backout import heap
        gc.disable()
        heap.release()  # a caller that turned it off keeps it off
        first = gc.isenabled()
        gc.enable()
        heap.hold(); held = gc.isenabled(); heap.release(); heap.release()
        print(int(first), int(held), int(gc.isenabled()), int(gc.get_freeze_count() > 0))
        """
    )
    assert states == [0, 0, 1, 1]
