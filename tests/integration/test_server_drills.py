"""A drill whose fault kills the executor, over the API (``POST /api/v1/rehearsals``), on real
HTTP, SQLite and PostgreSQL: the server cannot fork (it has threads), so the drill's
executor runs in a spawned process of its own, which the fault kills with SIGKILL; the
request resumes the run from its journal and answers with the drill, as `backout rehearse`
does. Everything is done as the token's actor.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backout import commands
from backout.commands.caller import Caller
from backout.errors import ServiceBusyError
from backout.kernel.events import EventKind
from backout.settings import Settings
from backout.store.models import AuditRow
from tests.callers import caller
from tests.e2e import procs
from tests.integration.test_rehearse import BACKOUT, GOOD, layout, live
from tests.integration.test_server import Api, assert_no_secrets, serve, with_password
from tests.services import wait_until

__all__ = ["serve"]  # the fixture, re-exported for pytest

ACTOR = "drill-lead"


@pytest.fixture
def served(serve: Callable[..., Api], tmp_path: Path) -> Api:
    """The server, with a plan folder holding `shop`: the drill of test_rehearse.py (a
    `current` symlink broken and switched back, detected by a command's reading)."""
    folder = tmp_path / "plans"
    folder.mkdir()
    layout(folder, idempotent="true", faults="[]").rename(folder / "shop.yaml")
    return serve(plans=folder)


def audit_of(api: Api, run_id: str) -> list[AuditRow]:
    with api.store.session() as session:
        rows = session.query(AuditRow).filter(AuditRow.subject == f"run:{run_id}").all()
        session.expunge_all()
        return rows


def test_a_drill_whose_fault_kills_the_executor_is_resumed_by_the_server(
    served: Api, tmp_path: Path
) -> None:
    api = served
    operator = api.token("operator", ACTOR)
    body = {"plan": "shop", "faults": ["kill:step=switch back"]}
    response = api.post("/api/v1/rehearsals", operator, json=body)

    assert response.status_code == 201, response.text
    drill: dict[str, Any] = response.json()
    assert drill["passed"] is True, drill["message"]
    assert [f["acted"] for f in drill["faults"]] == [True]
    run_id = drill["run"]["run_id"]
    events = commands.journal(api.caller, run_id)
    kinds = [e.kind for e in events]
    killed = kinds.index(EventKind.FAULT_INJECTED)
    assert "SIGKILL" in str(events[killed].data)
    assert kinds[killed + 1] == EventKind.RUN_RESUMED  # nothing after the kill but the resume
    assert kinds.count(EventKind.BACKOUT_STARTED) == 1  # the break is not done again
    assert drill["run"]["steps"][BACKOUT]["attempts"] == 2  # killed in 1, run again on resume
    assert live(tmp_path / "plans") == GOOD
    # two processes acted, both as the token's actor: the spawned executor that started the
    # run (and died), and the server that resumed it; never the server's own actor
    started = [e for e in events if e.kind == EventKind.RUN_STARTED]
    resumed = [e for e in events if e.kind == EventKind.RUN_RESUMED]
    assert len(started) == 1
    assert len(resumed) == 1
    assert {e.data["actor"] for e in [*started, *resumed]} == {ACTOR}
    owners = {str(e.data.get("owner", "")).split(":")[1] for e in [*started, *resumed]}
    assert len(owners) == 2, owners
    assert str(os.getpid()) in owners  # the server's process resumed it
    records = audit_of(api, run_id)
    actions = {r.action for r in records}
    assert {"run.started", "run.resumed", "rehearsal.recorded"} <= actions, actions
    assert {r.actor for r in records} == {ACTOR}
    [listed] = api.get("/api/v1/rehearsals", operator).json()
    assert (listed["run_id"], listed["actor"], listed["outcome"]) == (run_id, ACTOR, "succeeded")
    assert_no_secrets(api)


SLOW = """plan: slow
steps:
  - name: wait
    run: [sleep, "120"]
    timeout: 5m
  - name: switch back
    run: ["true"]
"""
PARENT = """import sys
from backout.commands.caller import Caller
from backout.commands.rehearsals import parse_fault, rehearse, spawned_executor
from backout.store.db import Store

with Store(sys.argv[1]) as store:
    fault = parse_fault("kill:step=switch back")
    rehearse(Caller(store, "ci"), sys.argv[2], True, [fault], executor=spawned_executor)
"""
WAIT_S = 60.0


def test_a_spawned_executor_whose_parent_dies_stops_its_run_at_a_safe_point(
    store_url: str, tmp_path: Path
) -> None:
    """The server (here a small process drilling as the server does) is SIGKILLed while
    its drill's executor runs a step: the executor sees its stdin close, stops the run as
    on SIGTERM (the step's program stopped, the run journalled as stopped) and exits."""
    plan = tmp_path / "slow.yaml"
    plan.write_text(SLOW)
    me = caller(Settings(database_url=with_password(store_url), actor="ci"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, with_password(store_url), str(plan)],
        env=env,
        start_new_session=True,  # its group: the executor too, for the clean-up
    )
    try:
        wait_until(lambda: bool(running_step(me)), WAIT_S, "the drill's step to run")
        [started] = [
            e for e in commands.journal(me, running_step(me)) if e.kind == EventKind.RUN_STARTED
        ]
        executor = int(str(started.data["owner"]).split(":")[1])
        assert executor != parent.pid  # a process of its own
        parent.kill()
        parent.wait(WAIT_S)
        assert procs.wait_gone(executor, WAIT_S), "the executor outlived its parent"
    finally:
        procs.kill_group_of(parent.pid)
        parent.wait(WAIT_S)
    [run] = commands.runs(me, "slow")
    kinds = [e.kind for e in commands.journal(me, run.run_id)]
    assert EventKind.RUN_STOPPED in kinds, kinds
    assert EventKind.FAULT_INJECTED not in kinds  # stopped in the first step, never killed
    assert "stopped by SIGTERM during step 1 'wait'" in run.message  # resumable, as after one


def running_step(me: Caller) -> str:
    """The slow drill's run, once its first step's program runs; "" before."""
    newest = commands.runs(me, "slow", limit=1)
    if not newest:
        return ""
    kinds = [e.kind for e in commands.journal(me, newest[0].run_id)]
    return str(newest[0].run_id) if EventKind.STEP_PROCESS in kinds else ""


def test_a_drill_whose_run_a_worker_took_over_waits_for_its_end(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker on the same store may take the killed executor's run over before the
    drilling process resumes it: the drill then follows the run to its end, wherever it
    runs, and reports it, instead of failing with "the service is busy"."""
    rehearsals = importlib.import_module("backout.commands.rehearsals")  # the module

    folder = tmp_path / "drill"
    folder.mkdir()
    plan = layout(folder, idempotent="true", faults="[]")
    me = caller(Settings(database_url=with_password(store_url), actor="ci"))
    real_resume = rehearsals.resume
    workers: list[threading.Thread] = []

    def taken_over(who: Caller, run_id: str, **_: Any) -> None:
        worker = threading.Thread(target=real_resume, args=(who, run_id), name="worker")
        workers.append(worker)
        worker.start()
        wait_until(lambda: resumed_by_worker(who, run_id), WAIT_S, "the worker to resume")
        raise ServiceBusyError(f"run {run_id} is held by a worker")

    monkeypatch.setattr(rehearsals, "resume", taken_over)
    fault = rehearsals.parse_fault("kill:step=switch back")
    drill = rehearsals.rehearse(me, plan, True, [fault])
    for worker in workers:
        worker.join(WAIT_S)
    assert workers, "the executor was not killed"
    assert drill.passed is True, drill.message
    kinds = [e.kind for e in commands.journal(me, drill.run.run_id)]
    assert kinds[-1] == EventKind.RUN_FINISHED
    assert live(folder) == GOOD


def resumed_by_worker(who: Caller, run_id: str) -> bool:
    return EventKind.RUN_RESUMED in [e.kind for e in commands.journal(who, run_id)]


class _TestOnlyChannel:
    """A kind made in this process from a module a spawned child cannot import."""

    kind = "test-only"


def test_a_spawned_executor_gets_the_plan_without_this_process_s_kinds(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is sent to a spawned executor without the registries it was checked
    against: one holding a kind this process made from a module the child cannot import (a
    plugin's, a test's) must not stop the child from reading its work."""
    rehearsals = importlib.import_module("backout.commands.rehearsals")
    from backout.channels import CHANNELS
    from backout.plans import load_plan

    monkeypatch.setitem(CHANNELS._items, "test-only", _TestOnlyChannel())
    folder = tmp_path / "drill"
    folder.mkdir()
    loaded = load_plan(layout(folder, idempotent="true", faults="[]"))
    me = caller(Settings(database_url=with_password(store_url), actor="ci"))
    work = pickle.dumps(rehearsals.DrillExecutor.of(me, loaded, {"mode": "rehearsal"}))
    read = subprocess.run(
        [sys.executable, "-P", "-c", READ_BACK],
        input=work,
        cwd=tmp_path,  # not the project: `tests` cannot be imported there
        capture_output=True,
        timeout=WAIT_S,
    )
    assert read.returncode == 0, read.stderr.decode()
    assert read.stdout.decode().split() == [loaded.plan.plan, str(loaded.path)]


READ_BACK = """import pickle, sys
executor = pickle.loads(sys.stdin.buffer.read())
print(executor.loaded.plan.plan, executor.loaded.path)
assert executor.loaded.kinds is not None
"""
