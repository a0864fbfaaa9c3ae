"""`backout watch` over several plans: one process, a run per deployment (commands/fleet.py).

The real CLI in a process of its own, on SQLite and PostgreSQL, against a real target server:
one deployment's target turns bad (its trigger fires and only it backs out), one is backed
out by a person's `backout trigger` from another process (through the inbox), one stays
healthy; the watch's own metrics are served while it runs. And what is refused before any
run is made, and a stop that every run journals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema

from backout import commands
from backout.reports.schemas import output_schema
from backout.settings import Settings
from tests.callers import caller
from tests.e2e import procs
from tests.fleet_targets import TargetServer, fleet_plan
from tests.services import free_port, wait_until

DEADLINE = 60.0


def write_plans(folder: Path, targets: TargetServer, count: int) -> Path:
    plans = folder / "plans"
    plans.mkdir()
    for n in range(count):
        step = f"[sh, -c, 'echo {n} >> ../marks']"
        (plans / f"fleet-{n}.yaml").write_text(fleet_plan(n, targets.url(n), step=step))
    return plans


def backout(store_url: str, cwd: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url, "BACKOUT_ACTOR": "tester"}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "backout", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def watching(store_url: str, services: list[str]) -> dict[str, str]:
    """Run id per service, once every one of them has journalled watch_started."""
    me = caller(Settings(database_url=store_url, actor="tester"))
    found: dict[str, str] = {}
    for service in services:
        runs = commands.runs(me, service, limit=1)
        if not runs:
            return {}
        kinds = [e.kind for e in commands.journal(me, runs[0].run_id)]
        if "watch_started" not in kinds:
            return {}
        found[service] = runs[0].run_id
    return found


def wait_watching(store_url: str, services: list[str], process: subprocess.Popen[str]) -> dict:
    box: dict[str, str] = {}

    def ready() -> bool:
        assert process.poll() is None, process.communicate()
        box.update(watching(store_url, services))
        return bool(box)

    wait_until(ready, DEADLINE, f"{services} watching")
    return box


def test_one_process_watches_several_deployments_and_backs_out_only_the_bad_one(
    store_url: str, tmp_path: Path
) -> None:
    services = ["fleet-0", "fleet-1", "fleet-2"]
    metrics_port = free_port()
    with TargetServer() as targets:
        plans = write_plans(tmp_path, targets, 3)
        watch = backout(
            store_url, tmp_path, "watch", str(plans), "--for", "10s", "--json",
            "--metrics", f"127.0.0.1:{metrics_port}",
        )  # fmt: skip
        try:
            runs = wait_watching(store_url, services, watch)
            exposed = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            targets.turn_bad(1)
            person = backout(store_url, tmp_path, "trigger", "fleet-2", "--reason", "bad build")
            assert person.wait(DEADLINE) == 0, person.communicate()
            out, err = watch.communicate(timeout=DEADLINE)
        finally:
            procs.kill_group_of(watch.pid)
    assert watch.returncode == 4, err  # at least one backed out, and every backout verified
    report = json.loads(out)
    schema = jsonschema.Draft202012Validator(output_schema("fleet"))
    assert not [e.message for e in schema.iter_errors(report)]  # docs/json-output.md's promise
    outcomes = {r["service"]: r for r in report["runs"]}
    assert {s: outcomes[s]["run_id"] for s in services} == runs
    assert outcomes["fleet-0"]["run"]["result"] == "healthy"
    assert outcomes["fleet-1"]["run"]["result"] == "backed_out"
    assert outcomes["fleet-1"]["run"]["trigger"]["trigger"] == "errors above 10%"
    assert outcomes["fleet-2"]["run"]["result"] == "backed_out"
    assert outcomes["fleet-2"]["run"]["trigger"]["trigger"] == "manual"
    # each backout ran its own steps once; the healthy one ran none
    assert sorted((tmp_path / "marks").read_text().split()) == ["1", "2"]
    assert report["lag"]["readings"] > 0
    assert report["lag"]["p99_s"] is not None
    # while it watched: its own metrics, a gauge and a lag histogram per deployment
    assert "backout_watch_deployments 3.0" in exposed
    for service in services:
        assert f'backout_watch_evaluation_lag_seconds_count{{service="{service}"}}' in exposed


def test_a_bad_plan_a_repeated_service_or_a_listener_refuse_them_all(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'backout.db'}"
    with TargetServer() as targets:
        plans = write_plans(tmp_path, targets, 2)
        (plans / "broken.yaml").write_text("plan: broken\nservice: broken\nsteps: nope\n")
        refused = backout(store_url, tmp_path, "watch", str(plans), "--for", "1s")
        _, err = refused.communicate(timeout=DEADLINE)
        assert refused.returncode == 2
        assert "broken.yaml" in err
        assert "Traceback" not in err
        (plans / "broken.yaml").unlink()
        twice = tmp_path / "again.yaml"
        twice.write_text((plans / "fleet-0.yaml").read_text())
        repeated = backout(store_url, tmp_path, "watch", str(plans), str(twice), "--for", "1s")
        _, err = repeated.communicate(timeout=DEADLINE)
        assert repeated.returncode == 2
        assert "both watch service 'fleet-0'" in err
        assert "again.yaml" in err
        listening = backout(
            store_url, tmp_path, "watch", str(plans), "--for", "1s", "--listen", "127.0.0.1:0"
        )
        _, err = listening.communicate(timeout=DEADLINE)
        assert listening.returncode == 2
        assert "--listen takes one plan" in err
    me = caller(Settings(database_url=store_url, actor="tester"))
    assert commands.runs(me, None, limit=10) == []  # nothing was started


def test_a_stop_reaches_every_run_and_each_can_be_resumed(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'backout.db'}"
    services = ["fleet-0", "fleet-1"]
    with TargetServer() as targets:
        plans = write_plans(tmp_path, targets, 2)
        watch = backout(store_url, tmp_path, "watch", str(plans), "--for", "1h")
        try:
            runs = wait_watching(store_url, services, watch)
            os.killpg(watch.pid, signal.SIGTERM)
            out, err = watch.communicate(timeout=DEADLINE)
        finally:
            procs.kill_group_of(watch.pid)
    assert watch.returncode == 143, err
    assert "2 run(s) interrupted" in err
    me = caller(Settings(database_url=store_url, actor="tester"))
    for service in services:
        kinds = [e.kind for e in commands.journal(me, runs[service])]
        assert kinds[-1] == "run_stopped", kinds
        assert runs[service] in out
    assert not (tmp_path / "marks").exists()  # a stop backs nothing out
