"""Starting runs through the API, and the server's workers (``backout server --workers N``),
with real ``backout server`` processes (each in its own process group, on a free port) on
SQLite and PostgreSQL:

* ``POST /api/v1/runs`` creates a pending run that a server's worker executes to the end;
  roles are checked, an unknown plan is a 404, and a refused run leaves nothing behind;
* two servers on one PostgreSQL database: the one whose worker runs a run is killed with
  SIGKILL mid-step, the other takes the run over and finishes it, and no step's effect
  happens twice (the takeover time is printed, never asserted);
* SIGTERM drains a server's workers: the step in flight finishes, the run is handed back,
  the server exits 143, and ``backout worker --once`` finishes the run.

Each step appends a line to ``effects`` (in the plans' folder, where steps run) when it is
done, so a step run twice shows twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backout import commands
from backout.commands.tokens import create_token
from backout.kernel.events import Event
from backout.settings import Settings
from backout.store import leases
from tests.callers import caller
from tests.e2e import procs
from tests.services import wait_for_line, wait_until

WAIT_S = 60.0  # generous: a loaded machine takes seconds to start a server or a step
SERVING = re.compile(r"serving the API from \S+ on (http://\S+) \(")
PROBLEM = "application/problem+json"
FAST_LEASES = {"BACKOUT_LEASE_TTL": "2", "BACKOUT_HEARTBEAT": "0.5"}

SHOP = """plan: shop
service: shop
steps:
  - name: first
    run: [sh, -c, 'echo first >> effects']
  - name: second
    run: [sh, -c, 'echo second >> effects']
"""
# the slow step marks its start and its pid, then waits until the test lets it go
SLOW = """plan: {name}
service: {name}
steps:
  - name: first
    run: [sh, -c, 'echo first >> effects']
    idempotent: true
  - name: slow
    run: [sh, -c, 'echo begin >> starts; echo $$ > inside;
          while [ ! -e release ]; do sleep 0.05; done; echo slow >> effects']
    timeout: 60s
    idempotent: {idempotent}
  - name: third
    run: [sh, -c, 'echo third >> effects']
    idempotent: true
"""
# a watch backed out by an alert posted to the server
WATCHED = """plan: watched
service: watched
triggers:
  - name: paged
    alertmanager: {match: {service: watched}}
steps:
  - name: back out
    run: [sh, -c, 'echo backout >> effects']
"""
# a deploy whose one stage waits for an approval posted to the server
ROLLED = """plan: rolled
service: rolled
deploy:
  strategy: canary
  stages:
    - name: stage 1
      steps:
        - name: shift
          run: [sh, -c, 'echo shift >> effects']
          undo: {run: [sh, -c, 'echo undo >> effects']}
      hold: 100ms
      approve: true
steps:
  - name: back out
    run: [sh, -c, 'echo backout >> effects']
"""
INVALID = """plan: invalid
steps:
  - name: nothing to do
    timeout: 10s
"""
NEEDS_BASELINE = """plan: pinned
service: pinned
steps:
  - name: back to the good release
    run: [echo, '{{ baseline.release }}']
"""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def backout(store: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "backout", "--db", store, *args]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The working folder (steps write there) with the server's plans in ``plans/``."""
    plans = tmp_path / "plans"
    plans.mkdir()
    for name, text in [
        ("shop", SHOP),
        ("slow", SLOW.format(name="slow", idempotent="true")),
        ("once", SLOW.format(name="once", idempotent="false")),
        ("invalid", INVALID),
        ("pinned", NEEDS_BASELINE),
        ("watched", WATCHED),
        ("rolled", ROLLED),
    ]:
        (plans / f"{name}.yaml").write_text(text)
    return tmp_path


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """The servers a test starts; whatever still runs at its end is killed by group."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.process.wait(WAIT_S)


def start_server(
    servers: list[Server], store: str, folder: Path, *args: str, name: str = "server"
) -> Server:
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            backout(store, "server", "--listen", "127.0.0.1:0", "--plans", "plans", *args),
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, **FAST_LEASES},
            start_new_session=True,  # its own process group, as under a service manager
        )
    found = wait_for_line(process, log, SERVING, f"backout server ({name})")
    server = Server(process, found.group(1), log)
    servers.append(server)
    return server


def token(store: str, role: str) -> str:
    return create_token(caller(Settings(database_url=store)), role, f"{role}-bot", None).secret


def start_run(server: Server, secret: str, plan: str, **extra: Any) -> httpx.Response:
    body = {"plan": plan, "reason": "the release broke checkout", **extra}
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.post(f"{server.url}/api/v1/runs", json=body, headers=headers, timeout=WAIT_S)


def run_status(server: Server, secret: str, run_id: str) -> str:
    headers = {"Authorization": f"Bearer {secret}"}
    answer = httpx.get(f"{server.url}/api/v1/runs/{run_id}", headers=headers, timeout=WAIT_S)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def wait_for_status(server: Server, secret: str, run_id: str, wanted: str) -> None:
    wait_until(
        lambda: run_status(server, secret, run_id) == wanted, WAIT_S, f"run {run_id} {wanted}"
    )


def journal(store: str, run_id: str) -> list[Event]:
    return commands.journal(caller(Settings(database_url=store)), run_id)


def first_event(store: str, run_id: str, kind: str) -> Event | None:
    return next((e for e in journal(store, run_id) if e.kind == kind), None)


def executor_pid(event: Event | None) -> int:
    assert event is not None
    return int(event.data["executor"]["pid"])


def run_count(store: str) -> int:
    return len(commands.runs(caller(Settings(database_url=store)), limit=100))


def at(folder: Path, name: str) -> Path:
    """A file the steps write or read: they run in the plans' folder."""
    return folder / "plans" / name


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def assert_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert "Traceback" not in answer.text
    return dict(answer.json())


def stop(server: Server, sig: signal.Signals) -> int:
    server.process.send_signal(sig)
    return server.process.wait(WAIT_S)


# --- starting a run ---------------------------------------------------------------------------
def test_a_run_started_through_the_api_is_executed_by_the_servers_worker(
    store_url: str, folder: Path, servers: list[Server]
) -> None:
    server = start_server(servers, store_url, folder, "--workers", "1")
    secret = token(store_url, "operator")
    started = start_run(server, secret, "shop")
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["status"] == "pending"
    assert (run["plan"], run["service"], run["actor"]) == ("shop", "shop", "operator-bot")
    assert started.headers["location"] == f"/api/v1/runs/{run['run_id']}"
    wait_for_status(server, secret, run["run_id"], "succeeded")
    assert lines(at(folder, "effects")) == ["first", "second"]
    created = first_event(store_url, run["run_id"], "run_created")
    assert created is not None
    assert created.data["reason"] == "the release broke checkout"
    assert executor_pid(first_event(store_url, run["run_id"], "run_started")) == server.pid
    assert stop(server, signal.SIGTERM) == 143
    said = server.log.read_text()
    assert f"worker 1: run {run['run_id']}: run_finished" in said
    assert "Traceback" not in said


def test_a_watch_and_a_deploy_started_through_the_api_back_out_and_promote_through_it(
    store_url: str, folder: Path, servers: list[Server]
) -> None:
    """The team's whole loop over HTTP: an operator starts a watch, Alertmanager's alert
    (as the generic form) backs it out; an operator starts a deploy, an approver lets its
    checkpoint pass; the server's worker executes both."""
    server = start_server(servers, store_url, folder, "--workers", "2")
    operator, approver = token(store_url, "operator"), token(store_url, "approver")
    headers = {"Authorization": f"Bearer {operator}"}

    watching = start_run(server, operator, "watched", mode="watch", **{"for": "10m"})
    assert watching.status_code == 202, watching.text
    watch_id = watching.json()["run_id"]
    wait_until(
        lambda: first_event(store_url, watch_id, "watch_started") is not None,
        WAIT_S,
        "the worker to start the watch",
    )
    alert = {"service": "watched", "alertname": "CheckoutDown", "reason": "503s"}
    posted = httpx.post(f"{server.url}/api/v1/alerts", json=alert, headers=headers, timeout=WAIT_S)
    assert posted.status_code == 200, posted.text
    assert posted.json()["rung"] == [{"service": "watched", "run_id": watch_id}]
    wait_for_status(server, operator, watch_id, "succeeded")
    report = commands.status(caller(Settings(database_url=store_url)), watch_id)
    assert report.result == "backed_out"
    assert lines(at(folder, "effects")) == ["backout"]

    deploying = start_run(server, operator, "rolled", mode="deploy", release="v2")
    assert deploying.status_code == 202, deploying.text
    deploy_id = deploying.json()["run_id"]
    wait_until(
        lambda: first_event(store_url, deploy_id, "checkpoint_started") is not None,
        WAIT_S,
        "the deploy to wait at its checkpoint",
    )
    approve = {"Authorization": f"Bearer {approver}"}
    approved = httpx.post(
        f"{server.url}/api/v1/runs/{deploy_id}/approve",
        json={"comment": "canary looks fine"},
        headers=approve,
        timeout=WAIT_S,
    )
    assert approved.status_code == 202, approved.text
    wait_for_status(server, operator, deploy_id, "succeeded")
    report = commands.status(caller(Settings(database_url=store_url)), deploy_id)
    assert report.result == "promoted"
    assert lines(at(folder, "effects")) == ["backout", "shift"]

    # what each mode needs is checked before anything is made
    for extra, detail in (
        ({"mode": "deploy"}, "has no `deploy:` block"),
        ({"mode": "watch"}, "how long to watch"),
        ({"release": "v3"}, "takes no release"),
    ):
        refused = assert_problem(start_run(server, operator, "shop", **extra), 400)
        assert detail in refused["detail"]
    bad_time = assert_problem(
        start_run(server, operator, "watched", mode="watch", **{"for": "soon"}), 422
    )
    assert "duration" in bad_time["detail"]


def test_only_an_operator_starts_runs_and_a_refused_run_leaves_nothing_behind(
    store_url: str, folder: Path, servers: list[Server]
) -> None:
    server = start_server(servers, store_url, folder)  # no workers: nothing would run
    spec = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=WAIT_S).json()
    operation = spec["paths"]["/api/v1/runs"]["post"]
    assert operation["summary"]
    assert operation["tags"] == ["runs"]
    assert "202" in operation["responses"]
    fields = spec["components"]["schemas"]["StartRequest"]["properties"]
    assert set(fields) == {"plan", "reason", "environment", "change", "mode", "release", "for"}
    assert all(field.get("description") for field in fields.values())
    for role in ("viewer", "approver"):
        denied = assert_problem(start_run(server, token(store_url, role), "shop"), 403)
        assert "needs the role operator" in denied["detail"]
    secret = token(store_url, "operator")
    unknown = assert_problem(start_run(server, secret, "nowhere"), 404)
    assert "no plan 'nowhere'" in unknown["detail"]
    assert "shop" in unknown["hint"]  # the plans the server offers
    invalid = assert_problem(start_run(server, secret, "invalid"), 422)
    assert "invalid.yaml:3" in invalid["detail"]  # the issue, with its place
    no_baseline = assert_problem(start_run(server, secret, "pinned"), 400)
    assert "no baseline snapshot for service 'pinned'" in no_baseline["detail"]
    assert "backout snapshot" in no_baseline["hint"]
    no_env = assert_problem(start_run(server, secret, "shop", environment="staging"), 400)
    assert "declares no `environments:`" in no_env["detail"]
    assert run_count(store_url) == 0
    accepted = start_run(server, secret, "shop")
    assert accepted.status_code == 202, accepted.text
    busy = assert_problem(start_run(server, secret, "shop"), 409)  # one active run a service
    assert accepted.json()["run_id"] in busy["detail"]
    assert run_count(store_url) == 1
    assert stop(server, signal.SIGTERM) == 143


# --- two servers, one killed ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("plan", "outcome", "effects", "starts"),
    [
        # the interrupted step is idempotent: it runs again, and its effect happens once
        ("slow", "succeeded", ["first", "slow", "third"], ["begin", "begin"]),
        # it is not: the run needs attention, and nothing runs it a second time
        ("once", "needs_attention", ["first"], ["begin"]),
    ],
)
def test_a_killed_servers_run_is_taken_over_by_the_other_server_without_doing_a_step_twice(
    postgres_url: str,
    folder: Path,
    servers: list[Server],
    plan: str,
    outcome: str,
    effects: list[str],
    starts: list[str],
) -> None:
    first = start_server(servers, postgres_url, folder, "--workers", "1", name="a")
    secret = token(postgres_url, "operator")
    started = start_run(first, secret, plan)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    step = int(procs.wait_for_file(at(folder, "inside")))  # server A's worker is in step 2
    assert executor_pid(first_event(postgres_url, run_id, "run_started")) == first.pid
    second = start_server(servers, postgres_url, folder, "--workers", "1", name="b")
    (at(folder, "inside")).unlink()
    killed_at = time.time()
    os.killpg(first.pid, signal.SIGKILL)  # the server, its worker and what runs in its group
    assert first.process.wait(WAIT_S) == -signal.SIGKILL
    (at(folder, "release")).write_text("")  # from now on any copy of the step finishes at once
    try:
        wait_for_status(second, secret, run_id, outcome)
        assert procs.wait_gone(step), "server A's step still runs"
    finally:
        procs.kill_group_of(step)
    resumed = first_event(postgres_url, run_id, "run_resumed")
    assert executor_pid(resumed) == second.pid
    assert resumed is not None
    print(f"takeover: server B resumed the run {resumed.at - killed_at:.3f}s after the SIGKILL")
    assert lines(at(folder, "effects")) == effects  # each step's effect once at most
    assert lines(at(folder, "starts")) == starts
    assert "run_resumed" in second.log.read_text()
    assert stop(second, signal.SIGTERM) == 143


# --- SIGTERM drains ---------------------------------------------------------------------------
def test_sigterm_drains_the_servers_worker_and_hands_the_run_back(
    store_url: str, folder: Path, servers: list[Server]
) -> None:
    server = start_server(servers, store_url, folder, "--workers", "1", "--drain", "60s")
    secret = token(store_url, "operator")
    started = start_run(server, secret, "slow")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    step = int(procs.wait_for_file(at(folder, "inside")))
    server.process.send_signal(signal.SIGTERM)
    # the API stops at once; the worker's step goes on until it is done
    wait_until(lambda: not _answers(server), WAIT_S, "the API to stop answering")
    assert not procs.gone(step)
    (at(folder, "release")).write_text("")
    assert server.process.wait(WAIT_S) == 143
    assert procs.gone(step)
    assert lines(at(folder, "effects")) == ["first", "slow"]  # step 3 was never started
    stopped = journal(store_url, run_id)[-1]
    assert (stopped.kind, stopped.step) == ("run_stopped", None)  # between two steps
    assert _lease_holder(store_url) is None  # handed back
    said = server.log.read_text()
    assert f"stopped run {run_id} between steps on SIGTERM" in said
    assert "server stopped on SIGTERM" in said
    worker = subprocess.run(
        backout(store_url, "worker", "--once"),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env={**os.environ, **FAST_LEASES},
    )
    assert worker.returncode == 0, worker.stderr
    assert commands.status(caller(Settings(database_url=store_url)), run_id).status == "succeeded"
    assert lines(at(folder, "effects")) == ["first", "slow", "third"]
    assert lines(at(folder, "starts")) == ["begin"]


def _answers(server: Server) -> bool:
    try:
        httpx.get(f"{server.url}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _lease_holder(store: str) -> leases.Holder | None:
    with caller(Settings(database_url=store)).store.session() as session:
        return leases.holder(session, "slow", time.time())
