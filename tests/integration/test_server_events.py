"""``backout server``'s live events (Server-Sent Events) and run actions (resume, abandon)
over real HTTP, on SQLite and PostgreSQL: the server in a thread of the test, as in
test_server.py; runs made for real with the verbs (one waits on a file the test creates, so
the test sees its events while it is still running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from backout import commands
from backout.render import journal_json
from backout.reports import RunReport
from backout.store import notices
from backout.store.models import RunRow
from tests.integration import test_server
from tests.integration.test_server import ROLES, Api, assert_no_secrets, assert_problem
from tests.services import stop_process, wait_until

serve = test_server.serve  # the fixture: the API on a free loopback port, in a thread
RUN_TIMEOUT_S = 120.0
WAITING_PLAN = """plan: {service}
steps:
  - name: wait for the go
    run: [sh, -c, 'while [ ! -e {go} ]; do sleep 0.05; done']
  - name: switch back
    run: ['true']
"""
STUCK_PLAN = """plan: {service}
steps:
  - name: migrate the ledger
    run: [sh, -c, 'echo once >> effects']
  - name: restart
    run: ['true']
"""


@dataclass
class Message:
    id: str | None
    event: str | None
    data: dict[str, Any] | None
    comments: list[str]


def messages(response: httpx.Response) -> Iterator[Message]:
    """The SSE messages of a streamed response, as they arrive (``retry:``-only blocks too)."""
    fields: dict[str, str] = {}
    comments: list[str] = []
    for line in response.iter_lines():
        if line == "":
            data = json.loads(fields["data"]) if "data" in fields else None
            yield Message(fields.get("id"), fields.get("event"), data, comments)
            fields, comments = {}, []
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def events_only(stream: Iterator[Message]) -> Iterator[Message]:
    return (message for message in stream if message.event is not None)


@contextmanager
def stream(
    api: Api, path: str, token: str | None, headers: dict[str, str] | None = None
) -> Iterator[tuple[httpx.Response, Iterator[Message]]]:
    all_headers = {**(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    with api.client.stream("GET", api.url + path, headers=all_headers) as response:
        yield response, messages(response)


class Background:
    """A verb run in a thread; its result (or its error) once it ends."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = target(*args)
            except BaseException as exc:  # handed to the test
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(RUN_TIMEOUT_S)
        assert not self.thread.is_alive(), "the run did not end"
        if self.error is not None:
            raise self.error
        return self.result


def waiting_run(api: Api, tmp_path: Path, service: str = "shop") -> tuple[Background, Path]:
    """A run started in a thread whose first step waits until the test creates ``go``."""
    go = tmp_path / f"go-{service}"
    plan = tmp_path / f"{service}.yaml"
    plan.write_text(WAITING_PLAN.format(service=service, go=go))
    return Background(commands.run, api.caller, plan), go


def run_id_of(api: Api, service: str) -> str:
    found: list[str] = []

    def created() -> bool:
        with api.store.session() as session:
            found.extend(r.id for r in session.query(RunRow).filter_by(service=service))
        return bool(found)

    wait_until(created, RUN_TIMEOUT_S, f"a run of {service}")
    return found[0]


def journal_of(api: Api, run_id: str) -> list[dict[str, Any]]:
    return [journal_json(event) for event in commands.journal(api.caller, run_id)]


# --- one run's events ----------------------------------------------------------------------
def test_a_runs_events_arrive_live_resume_after_the_last_id_and_end_with_the_run(
    serve: Any, tmp_path: Path
) -> None:
    api = serve()
    viewer = api.token("viewer")
    running, go = waiting_run(api, tmp_path)
    run_id = run_id_of(api, "shop")
    path = f"/api/v1/runs/{run_id}/events"

    seen: list[Message] = []
    with stream(api, path, viewer) as (response, received):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        for message in events_only(received):
            seen.append(message)
            if message.event == "step_started":
                break
    # the step waits for `go`, which does not exist yet: this event came while it ran
    assert not go.exists()
    assert running.thread.is_alive()
    assert [m.event for m in seen] == ["run_created", "run_started", "step_started"]
    assert [m.id for m in seen] == ["1", "2", "3"]
    assert [m.data for m in seen] == journal_of(api, run_id)[:3]  # as `journal --json`

    # reconnect after the step_started: the rest, nothing twice, then the stream ends
    rest: list[Message] = []
    with stream(api, path, viewer, {"Last-Event-ID": seen[-1].id or ""}) as (_, received):
        for message in events_only(received):
            rest.append(message)
            if message.event == "step_process":
                go.touch()  # let the step finish only now
        # the loop ended: the server closed the stream once the run was over
    report: RunReport = running.join()
    assert report.status == "succeeded"
    journal = journal_of(api, run_id)
    assert [m.data for m in seen + rest] == journal
    assert [m.id for m in rest] == [str(event["seq"]) for event in journal[3:]]
    assert rest[-1].event == "run_finished"
    assert [m.event for m in rest] == [event["kind"] for event in journal[3:]]

    # a finished run's stream: `?after=` for clients without headers; the header wins
    with stream(api, f"{path}?after=4", viewer) as (_, received):
        assert [m.id for m in events_only(received)] == [str(e["seq"]) for e in journal[4:]]
    headers = {"Last-Event-ID": str(len(journal) - 1)}
    with stream(api, f"{path}?after=1", viewer, headers) as (_, received):
        assert [m.event for m in events_only(received)] == ["run_finished"]
    with stream(api, f"{path}?after={len(journal)}", viewer) as (_, received):
        assert list(events_only(received)) == []
    assert_no_secrets(api)


def test_event_streams_refuse_bad_positions_unknown_runs_and_strangers(serve: Any) -> None:
    api = serve()
    viewer = api.token("viewer")
    for path in ("/api/v1/events", "/api/v1/runs/nope/events"):
        assert_problem(api.get(path), 401)
        bad = assert_problem(api.get(path, viewer, headers={"Last-Event-ID": "seven"}), 400)
        assert "Last-Event-ID 'seven' is not an event id" in bad["detail"]
        assert "hint" in bad
        assert_problem(api.get(path + "?after=-1", viewer), 400)
    missing = assert_problem(api.get("/api/v1/runs/nope/events", viewer), 404)
    assert "nope" in missing["detail"]


# --- every run's events --------------------------------------------------------------------
def test_the_global_stream_carries_new_runs_as_they_come_and_resumes_by_its_id(
    serve: Any, tmp_path: Path
) -> None:
    api = serve()
    viewer = api.token("viewer")
    before = commands.run(api.caller, _plan(tmp_path, "earlier"))  # history: not replayed

    seen: list[Message] = []
    with stream(api, "/api/v1/events", viewer) as (response, received):
        assert response.status_code == 200
        opened = next(received)  # the stream is open from here on
        assert opened.event is None
        running, go = waiting_run(api, tmp_path, "cart")
        for message in events_only(received):
            seen.append(message)
            if message.event == "step_started":
                break
        assert running.thread.is_alive()  # live: the step still waits for `go`

    run_id = run_id_of(api, "cart")
    assert {m.data["run_id"] for m in seen if m.data} == {run_id}  # not the earlier run's
    assert before.run_id != run_id
    assert [m.event for m in seen] == ["run_created", "run_started", "step_started"]
    ids = [int(m.id or 0) for m in seen]
    assert ids == sorted(set(ids))
    journal = journal_of(api, run_id)
    assert [{k: v for k, v in (m.data or {}).items() if k != "run_id"} for m in seen] == journal[:3]

    # resume after the step_started: a second run shows up in the same stream too
    rest: list[Message] = []
    with stream(api, "/api/v1/events", viewer, {"Last-Event-ID": seen[-1].id or ""}) as (
        _,
        received,
    ):
        for message in events_only(received):
            rest.append(message)
            if message.event == "step_process":
                go.touch()
            if message.event == "run_finished":
                break
        assert running.join().status == "succeeded"
        later = Background(commands.run, api.caller, _plan(tmp_path, "later"))
        for message in events_only(received):
            rest.append(message)
            if message.event == "run_finished":
                break
        later_id = later.join().run_id
    cart = [m for m in rest if m.data and m.data["run_id"] == run_id]
    assert [m.data["seq"] for m in cart if m.data] == [e["seq"] for e in journal_of(api, run_id)][
        3:
    ]
    assert [m.event for m in rest if m.data and m.data["run_id"] == later_id] == [
        e["kind"] for e in journal_of(api, later_id)
    ]
    ids = [int(m.id or 0) for m in seen + rest]
    assert ids == sorted(set(ids))  # increasing, nothing twice


def _plan(tmp_path: Path, service: str) -> Path:
    plan = tmp_path / f"{service}.yaml"
    plan.write_text(f"plan: {service}\nsteps:\n  - name: switch back\n    run: ['true']\n")
    return plan


def test_a_journal_append_rings_the_journal_doorbell_of_other_processes(
    store_url: str, tmp_path: Path
) -> None:
    """What wakes a stream: a run executed in another process rings this one's doorbell
    (PostgreSQL's NOTIFY; on SQLite, the commit seen by the watching connection)."""
    from backout.store.db import Store

    store = Store(store_url)
    store.open()
    try:
        with notices.doorbell(store.engine, notices.JOURNAL) as bell:
            wait_until(lambda: bell.pushed, RUN_TIMEOUT_S, "the listening connection")
            bell.wait(0)  # the (re)connection's own ring
            bell.reasons()
            plan = str(_plan(tmp_path, "elsewhere"))
            done = subprocess.run(
                [sys.executable, "-m", "backout", "--db", store_url, "run", plan],
                env={**os.environ},
                capture_output=True,
                timeout=RUN_TIMEOUT_S,
            )
            assert done.returncode == 0, done.stderr
            assert bell.wait(RUN_TIMEOUT_S)
            assert notices.NOTICE in bell.reasons()
    finally:
        store.dispose()


def _caller(store: Any) -> Any:
    from backout.commands.caller import Caller

    return Caller(store, "tester")


# --- resume and abandon --------------------------------------------------------------------
def stuck_run(api: Api, folder: Path, service: str) -> str:
    """A run interrupted right after a non-idempotent step's action (its executor killed):
    resuming it without a decision leaves it needing attention."""
    folder.mkdir()
    plan = folder / "plan.yaml"
    plan.write_text(STUCK_PLAN.format(service=service))
    url = api.store.url
    killed = subprocess.run(
        [sys.executable, "-m", "backout", "--db", url, "run", str(plan)],
        env={**os.environ, "BACKOUT_FAILPOINTS": "action_done:1"},
        capture_output=True,
        cwd=folder,
        timeout=RUN_TIMEOUT_S,
    )
    assert killed.returncode == -9, killed.stderr
    return run_id_of(api, service)


def test_resume_and_abandon_need_the_operator_role_and_act_as_the_verbs(
    serve: Any, tmp_path: Path
) -> None:
    api = serve()
    tokens = {role: api.token(role) for role in ROLES}
    ledger = stuck_run(api, tmp_path / "ledger", "ledger")
    audit_ = stuck_run(api, tmp_path / "audit", "audit")
    cases = (
        (f"/api/v1/runs/{ledger}/resume", {}),
        (f"/api/v1/runs/{audit_}/abandon", {"reason": "checked by hand"}),
    )
    for path, body in cases:
        for role in ("viewer", "approver"):
            denied_before = len(api.audited("api.denied"))
            problem = assert_problem(api.post(path, tokens[role], json=body), 403)
            assert "needs the role operator or admin" in problem["detail"]
            denials = api.audited("api.denied")
            assert len(denials) == denied_before + 1
            assert denials[-1].actor == f"{role}-bot"
            assert (denials[-1].details["path"], denials[-1].details["permission"]) == (
                path,
                "operate",
            )
    operator = tokens["operator"]

    # resume without a decision: the interrupted step is not idempotent, so it waits
    first = api.post(f"/api/v1/runs/{ledger}/resume", operator)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "needs_attention"
    assert first.json() == commands.status(api.caller, ledger).to_json()
    # decisions as `backout resume` takes them, by step number
    for bad in ({"mark_done": [0]}, {"mark_done": [1], "skip": [1]}, {"retry": "one"}):
        assert_problem(api.post(f"/api/v1/runs/{ledger}/resume", operator, json=bad), 422)
    no_step = api.post(f"/api/v1/runs/{ledger}/resume", operator, json={"skip": [9]})
    assert "step 9 does not exist" in assert_problem(no_step, 400)["detail"]
    done = api.post(f"/api/v1/runs/{ledger}/resume", operator, json={"mark_done": [1]})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    assert done.json() == commands.status(api.caller, ledger).to_json()
    assert (tmp_path / "ledger" / "effects").read_text() == "once\n"  # not run again
    decided = [e for e in journal_of(api, ledger) if e["kind"] == "operator_decision"]
    assert decided
    assert decided[-1]["data"]["actor"] == "operator-bot"
    assert api.audited("run.decision")[-1].actor == "operator-bot"
    assert_problem(api.post("/api/v1/runs/nope/resume", operator), 404)

    # abandon: the reason is required
    for bad in ({}, {"reason": ""}):
        invalid = assert_problem(
            api.post(f"/api/v1/runs/{audit_}/abandon", operator, json=bad), 422
        )
        assert "reason" in invalid["detail"]
    api.post(f"/api/v1/runs/{audit_}/resume", operator)  # now it needs attention
    given_up = api.post(
        f"/api/v1/runs/{audit_}/abandon", operator, json={"reason": "checked by hand"}
    )
    assert given_up.status_code == 200, given_up.text
    assert (given_up.json()["status"], given_up.json()["result"]) == ("failed", "abandoned")
    record = api.audited("run.abandoned")[-1]
    assert (record.actor, record.subject) == ("operator-bot", f"run:{audit_}")
    assert record.details["reason"] == "checked by hand"
    again = api.post(f"/api/v1/runs/{audit_}/abandon", operator, json={"reason": "twice"})
    assert_problem(again, 409)
    assert_no_secrets(api)


# --- a stop ends the streams -------------------------------------------------------------------
def test_sigterm_ends_open_streams_cleanly_and_the_server_exits(tmp_path: Path) -> None:
    """An open global stream never ends by itself: a stop must end it (a complete response,
    not one cut off when the graceful stop's timeout runs out), then the server exits 143."""
    from tests.integration.test_server_cli import start

    store = f"sqlite:///{tmp_path / 'backout.db'}"
    log = tmp_path / "server.log"
    process, url, _ = start(store, log, "--open", "--listen", "127.0.0.1:0")
    try:
        with (
            httpx.Client(timeout=RUN_TIMEOUT_S) as client,
            client.stream("GET", f"{url}/api/v1/events") as response,
        ):
            received = messages(response)
            assert next(received).event is None  # open
            process.send_signal(signal.SIGTERM)
            assert list(events_only(received)) == []  # ended, and cleanly
        code = process.wait(RUN_TIMEOUT_S)
    finally:
        stop_process(process)
    assert code == 143
    said = log.read_text()
    assert "server stopped on SIGTERM" in said
    assert "graceful shutdown exceeded" not in said
    assert "Traceback" not in said


def test_a_new_runs_first_event_rings_the_journal_doorbell(store_url: str, tmp_path: Path) -> None:
    """A run created for a worker writes only ``run_created``: its ring wakes the streams
    (the global one shows new runs at once, not at its next look at the table)."""
    from backout.store.db import Store

    store = Store(store_url)
    store.open()
    try:
        with notices.doorbell(store.engine, notices.JOURNAL) as bell:
            bell.wait(0)  # a (re)connection's own ring, if any
            pending = commands.enqueue(_caller(store), _plan(tmp_path, "queued"), "a test")
            assert pending.status == "pending"
            assert bell.wait(0)
    finally:
        store.dispose()
