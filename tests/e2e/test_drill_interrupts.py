"""The fault-revert matrix: a drill stopped by SIGINT or SIGTERM while it watches for the
break or inside its backout reverts the break on the spot and ends `stopped`; one killed
by SIGKILL is resumed and finishes. Either way the service is back in its steady state
(nothing left broken), the break applied once, and the drill recorded once — on SQLite
and PostgreSQL. Each drill runs as a real `backout rehearse` process in
its own session; it is signalled by its process group, never by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from backout import commands
from backout.kernel.events import Event, EventKind
from backout.settings import Settings
from tests.callers import caller
from tests.e2e import procs
from tests.integration.change_helpers import invoke
from tests.integration.test_rehearse import BAD, BREAK, GOOD, UNDO, layout, live, wait_for

# detection that takes a while (the threshold must hold 1.5s), a backout step that is
# held 2s by a `slow` fault: a window to interrupt each phase in
PHASES = {
    "detect": (EventKind.CHECKPOINT_STARTED, []),
    "backout": (EventKind.FAULT_INJECTED, ["--fault", "slow:step=switch back,by=2s"]),
}
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}


def stop_drill(
    store_url: str,
    plan: Path,
    args: list[str],
    reached: Callable[[list[Event]], bool],
    signum: signal.Signals,
) -> str:
    """Start `backout rehearse` in its own session, signal its group once the journal
    shows ``reached``, wait for it to exit with the signal's code; the run's id."""
    me = caller(Settings(database_url=store_url, actor="drill-lead", lease_ttl=5.0))
    me.store.open()  # migrated here, before the drill's process
    stderr = plan.parent / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backout", "--db", store_url, "rehearse", str(plan), *args],
            cwd=plan.parent,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=procs.default_sigint,  # Ctrl-C reaches it even when the suite runs in `&`
        )
    try:

        def at_the_point() -> str | None:
            assert proc.poll() is None, stderr.read_text()
            runs = commands.runs(me)
            if not runs:
                return None
            return runs[0].run_id if reached(commands.journal(me, runs[0].run_id)) else None

        run_id: str = wait_for("the drill to reach the point to stop it", at_the_point)
        os.killpg(proc.pid, signum)  # its own session: the group is the drill's
        assert proc.wait(30) == EXIT[signum], stderr.read_text()
    finally:
        if proc.poll() is None:
            procs.kill_group_of(proc.pid)
            proc.wait(10)
    return run_id


@pytest.mark.parametrize("phase", sorted(PHASES))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=str)
def test_an_interrupted_drill_resumes_to_its_steady_state(
    store_url: str, tmp_path: Path, phase: str, signum: signal.Signals
) -> None:
    plan = layout(tmp_path, faults="[]", idempotent="true")
    plan.write_text(
        plan.read_text().replace("threshold: {above: 0.5}", "threshold: {above: 0.5, for: 1500ms}")
    )
    me = caller(Settings(database_url=store_url, actor="drill-lead", lease_ttl=5.0))
    marker, extra = PHASES[phase]
    run_id = stop_drill(
        store_url, plan, extra, lambda events: marker in [e.kind for e in events], signum
    )
    if signum != signal.SIGKILL:  # a graceful stop reverts the break on the spot
        assert live(tmp_path) == GOOD, (tmp_path / "stderr.txt").read_text()
        events = commands.journal(me, run_id)
        kinds = [e.kind for e in events]
        assert kinds[-1] == EventKind.RUN_FINISHED
        assert events[-1].data["result"] == "stopped"
        assert events[-1].data["message"] == (
            f"rehearsal stopped by {signum.name}: the break was reverted"
        )
        assert kinds.index(EventKind.RUN_STOPPED) < kinds.index(EventKind.RUN_FINISHED)
        assert [e.step for e in events if e.kind == EventKind.STEP_FINISHED][-1] == UNDO
        [drill] = [r for r in commands.rehearsals(me) if r.run_id == run_id]
        assert drill.outcome == "failed"
        return

    assert EventKind.RUN_FINISHED not in [e.kind for e in commands.journal(me, run_id)]
    assert live(tmp_path) == BAD  # killed with the service broken
    # `backout resume` of a drill says the drill's verdict (a dead owner's lease is taken
    # over at once)
    resumed = invoke(store_url, "resume", run_id)
    assert resumed.exit_code == 0, resumed.output
    assert f"rehearsal of shop (run {run_id}): passed" in resumed.stdout
    assert live(tmp_path) == GOOD  # back in its steady state: nothing left broken
    events = commands.journal(me, run_id)
    assert [e.step for e in events if e.kind == EventKind.STEP_STARTED].count(BREAK) == 1
    assert [e.kind for e in events].count(EventKind.STEADY_STATE) == 2
    drills = [r for r in commands.rehearsals(me) if r.run_id == run_id]
    assert [r.outcome for r in drills] == ["succeeded"]


# every built-in fault but `kill` (itself a SIGKILL and a resume, tested on its own); each
# with a `slow` hold on the backout step, the window in which the drill is stopped
FAULTS = {
    "fail_first": "fail_first:step=switch back",
    "slow": "slow:step=switch back,by=1s",
    "fail_check": "fail_check:check=good release live",
    "no_data": "no_data:signal=bad",
    "telemetry_error": "telemetry_error:signal=bad",
    "kill_process": "kill_process:pidfile=service.pid,before=switch back",
    "store_drop": "store_drop:before=switch back",
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=str)
def test_each_fault_stopped_inside_the_backout_leaves_nothing_broken(
    store_url: str, tmp_path: Path, fault: str, signum: signal.Signals
) -> None:
    plan = layout(tmp_path, faults="[]", idempotent="true", detect_within="2s")
    # no_data, telemetry_error: the trigger ignores missing data, so the break goes
    # undetected for 2s and the drill backs out, failed, and reverts its break
    (tmp_path / "service.pid").write_text("999999999\n")  # kill_process: a pid long gone
    me = caller(Settings(database_url=store_url, actor="drill-lead", lease_ttl=5.0))
    args = ["--fault", FAULTS[fault], "--fault", "slow:step=switch back,by=2s"]

    def held(events: list[Event]) -> bool:
        return any(e.kind == EventKind.FAULT_INJECTED and e.data["fault"] == "slow" for e in events)

    run_id = stop_drill(store_url, plan, args, held, signum)
    if signum != signal.SIGKILL:
        assert live(tmp_path) == GOOD  # the stop reverted the break: nothing left broken
        drill = commands.drill_of(me, run_id)
        assert drill is not None
        assert (drill.passed, drill.phases["result"]) == (False, "stopped")
        assert drill.exit_code == 128 + signum
        resumed = invoke(store_url, "resume", run_id)  # finished: says so, runs nothing
        assert resumed.exit_code == 128 + signum, resumed.output
        assert "the break was reverted" in resumed.stdout
    else:
        assert live(tmp_path) == BAD  # killed inside the backout: broken until resumed
        resumed = invoke(store_url, "resume", run_id)
        assert resumed.exit_code in (0, 1), resumed.output  # passed, or failed and reverted
        assert live(tmp_path) == GOOD  # nothing left broken, whatever the fault did
        failing = ("fail_check", "no_data", "telemetry_error")
        [row] = [r for r in commands.rehearsals(me) if r.run_id == run_id]
        assert row.outcome == ("failed" if fault in failing else "succeeded"), resumed.output
    assert len([r for r in commands.rehearsals(me) if r.run_id == run_id]) == 1
